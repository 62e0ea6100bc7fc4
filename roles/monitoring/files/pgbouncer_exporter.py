"""PgBouncer's admin console (SHOW LISTS / DATABASES / POOLS / STATS) as Prometheus metrics.

Installed by ywmessaging.scaling.monitoring (tasks/exporters.yml) on the PgBouncer hosts. Why not
Debian's prometheus-pgbouncer-exporter: its 1.7 (Debian 12) reads SHOW STATS' column
``total_requests``, which PgBouncer 1.8 renamed, and exits at start against Debian's PgBouncer 1.18
(KeyError: 'total_requests'). This one keeps that exporter's metric names for what the alert rules
use (pgbouncer_used_servers, pgbouncer_pool_size, pgbouncer_waiting_clients, ...), so the rules work
with either.

Every scrape asks the console afresh over one connection, reconnecting when it was lost; when the
console cannot be asked, the scrape still answers, with pgbouncer_up 0. Settings come from the
environment (the unit's EnvironmentFiles); libpq reads the password from PGPASSWORD, which the unit
loads from a root-only file (systemd credentials would be tidier, but they stay empty in a
container, where the lab's hosts run).
"""

import os
import sys
import time

import psycopg2
from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily

# SHOW POOLS column -> (metric, help). Names follow Debian's exporter where it had one.
POOL_GAUGES = {
    "cl_active": ("active_clients", "Client connections linked to a server connection or idle"),
    "cl_waiting": ("waiting_clients", "Client connections waiting for a server connection"),
    "sv_active": ("active_servers", "Server connections linked to a client"),
    "sv_idle": ("idle_servers", "Server connections idle and ready for a client"),
    "sv_used": ("used_servers_in_pool", "Server connections idle longer than server_check_delay"),
    "maxwait": ("max_wait_seconds", "How long the oldest waiting client has waited (whole seconds)"),
}
# SHOW DATABASES column -> (metric, help).
DATABASE_GAUGES = {
    "pool_size": ("pool_size", "Maximum number of server connections of the database's pools"),
    "reserve_pool": ("reserve_pool", "Extra server connections allowed when clients wait"),
    "current_connections": ("current_connections", "Server connections open for the database"),
    "max_connections": ("max_connections", "Maximum server connections for the database (0: no limit)"),
}
# SHOW STATS column -> (metric, help, divisor to seconds or 1).
STATS_COUNTERS = {
    "total_xact_count": ("transactions", "SQL transactions pooled", 1),
    "total_query_count": ("queries", "SQL queries pooled", 1),
    "total_xact_time": ("transaction_seconds", "Time spent in transactions", 1e6),
    "total_query_time": ("query_seconds", "Time spent running queries", 1e6),
    "total_wait_time": ("client_wait_seconds", "Time clients spent waiting for a server connection", 1e6),
}
# SHOW LISTS item -> (metric, help).
LIST_GAUGES = {
    "used_clients": ("used_clients", "Client connections open"),
    "used_servers": ("used_servers", "Server connections open"),
    "free_servers": ("free_servers", "Server connection slots allocated and unused"),
    "login_clients": ("login_clients", "Client connections logging in"),
    "pools": ("pools", "Number of pools"),
}


class ConsoleCollector:
    """Asks PgBouncer's admin console on every collect()."""

    def __init__(self, connect):
        self._connect = connect
        self._conn = None

    def _show(self, what):
        with self._conn.cursor() as cursor:
            cursor.execute("SHOW " + what)
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def _ask(self):
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return {what: self._show(what) for what in ("LISTS", "DATABASES", "POOLS", "STATS")}

    def collect(self):
        families = None
        try:
            families = list(metrics(self._ask()))
        except psycopg2.Error as exc:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            print("PgBouncer console: %s" % str(exc).strip(), file=sys.stderr, flush=True)
        except (KeyError, TypeError, ValueError) as exc:  # an answer of a shape this exporter does not know
            print("PgBouncer console answered unexpectedly: %r" % (exc,), file=sys.stderr, flush=True)
        up = GaugeMetricFamily("pgbouncer_up", "1 when PgBouncer's admin console answered this scrape")
        up.add_metric([], 0 if families is None else 1)
        yield up
        yield from families or []


def metrics(answers):
    """The metric families for one set of console answers (a dict of SHOW name -> rows)."""
    lists = {row["list"]: row["items"] for row in answers["LISTS"]}
    for item, (name, text) in LIST_GAUGES.items():
        if item in lists:
            yield GaugeMetricFamily("pgbouncer_" + name, text, value=float(lists[item]))

    # SHOW DATABASES names its database `name`; SHOW POOLS and SHOW STATS, `database`.
    yield from _table(answers["DATABASES"], DATABASE_GAUGES, {"database": "name"})
    yield from _table(answers["POOLS"], POOL_GAUGES, {"database": "database", "user": "user"})
    yield from _table(answers["STATS"], STATS_COUNTERS, {"database": "database"}, CounterMetricFamily)


def _table(rows, columns, labels, kind=GaugeMetricFamily):
    """One family per column of a SHOW answer (column -> (metric, help[, divisor to seconds])), a sample
    per row labelled from the row's columns (label -> column); a column a row leaves empty is skipped."""
    families = []
    for column, (name, text, *divisor) in columns.items():
        scale = divisor[0] if divisor else 1
        family = kind("pgbouncer_" + name, text, labels=list(labels))
        for row in rows:
            if row.get(column) is not None:  # numeric columns come back as Decimal
                family.add_metric([row[source] for source in labels.values()], float(row[column]) / scale)
        families.append(family)
    return families


def main():
    env = os.environ

    def connect():
        conn = psycopg2.connect(
            host=env.get("PGBOUNCER_HOST", "127.0.0.1"),
            port=int(env.get("PGBOUNCER_PORT", "6432")),
            user=env.get("PGBOUNCER_USER", "pgbouncer_stats"),
            dbname="pgbouncer",
            connect_timeout=5,
            application_name="ywmessaging-pgbouncer-exporter",
        )
        conn.autocommit = True  # the console has no transactions
        return conn

    REGISTRY.register(ConsoleCollector(connect))
    address, port = env.get("LISTEN_ADDRESS", "127.0.0.1"), int(env.get("LISTEN_PORT", "9127"))
    start_http_server(port, addr=address)  # a thread per scrape, IPv6 literals too, no log line per scrape
    print("serving PgBouncer's console metrics on %s:%d" % (address, port), file=sys.stderr, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
