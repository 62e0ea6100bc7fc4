"""The monitoring role's PgBouncer exporter (roles/monitoring/files/pgbouncer_exporter.py): PgBouncer
1.18's admin console answers (Debian 12's; the column names are the ones that broke Debian's own
exporter) turned into the metric names the alert rules read, and a console that cannot be asked
turned into pgbouncer_up 0 instead of a failed scrape. The lab proves it against a real PgBouncer
(molecule/default/tests/test_9_monitoring.py)."""

import decimal
import importlib.util
import pathlib

import psycopg2
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

SCRIPT = pathlib.Path(__file__).resolve().parents[3] / "roles" / "monitoring" / "files" / "pgbouncer_exporter.py"
spec = importlib.util.spec_from_file_location("pgbouncer_exporter", SCRIPT)
exporter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(exporter)

# What PgBouncer 1.18 answers (columns abridged to the ones the exporter reads, plus some it ignores).
ANSWERS = {
    "LISTS": [
        ("databases", 2),
        ("users", 3),
        ("pools", 2),
        ("used_clients", 41),
        ("used_servers", 26),
        ("free_servers", 4),
        ("login_clients", 0),
    ],
    "DATABASES": [
        {
            "name": "appdb",
            "host": "db",
            "port": 5432,
            "database": "appdb",
            "pool_size": 30,
            "reserve_pool": 5,
            "current_connections": 26,
            "max_connections": 0,
            "paused": 0,
            "disabled": 0,
        },
        {
            "name": "pgbouncer",
            "host": None,
            "port": 6432,
            "database": "pgbouncer",
            "pool_size": 2,
            "reserve_pool": 0,
            "current_connections": 0,
            "max_connections": 0,
            "paused": 0,
            "disabled": 0,
        },
    ],
    "POOLS": [
        {
            "database": "appdb",
            "user": "app",
            "cl_active": 30,
            "cl_waiting": 9,
            "cl_active_cancel_req": 0,
            "sv_active": 24,
            "sv_idle": 2,
            "sv_used": 0,
            "sv_tested": 0,
            "sv_login": 0,
            "maxwait": 1,
            "maxwait_us": 250000,
            "pool_mode": "transaction",
        },
        {
            "database": "pgbouncer",
            "user": "pgbouncer",
            "cl_active": 1,
            "cl_waiting": 0,
            "cl_active_cancel_req": 0,
            "sv_active": 0,
            "sv_idle": 0,
            "sv_used": 0,
            "sv_tested": 0,
            "sv_login": 0,
            "maxwait": 0,
            "maxwait_us": 0,
            "pool_mode": "statement",
        },
    ],
    "STATS": [
        {
            "database": "appdb",
            "total_xact_count": decimal.Decimal(1200),  # numeric columns: psycopg2 gives Decimals
            "total_query_count": 3400,
            "total_received": 1,
            "total_sent": 2,
            "total_xact_time": 2500000,
            "total_query_time": 1500000,
            "total_wait_time": decimal.Decimal(500000),
        },
    ],
}


class FakeCursor:
    def __init__(self, conn):
        self.conn = conn
        self.description = []
        self.rows = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql):
        self.conn.asked.append(sql)
        if self.conn.broken:
            raise psycopg2.OperationalError("server closed the connection unexpectedly")
        what = sql.split()[1]
        answer = ANSWERS[what]
        if what == "LISTS":
            names, self.rows = ["list", "items"], answer
        else:
            names = list(answer[0])
            self.rows = [tuple(row[n] for n in names) for row in answer]
        self.description = [type("Column", (), {"name": n})() for n in names]

    def fetchall(self):
        return self.rows


class FakeConnection:
    def __init__(self, broken=False):
        self.broken = broken
        self.closed = 0
        self.asked = []

    def cursor(self):
        return FakeCursor(self)

    def close(self):
        self.closed = 1


def scrape(connect):
    registry = CollectorRegistry()
    registry.register(exporter.ConsoleCollector(connect))
    samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_the_console_answers_become_the_metrics_the_alert_rules_read():
    samples = scrape(FakeConnection)
    assert samples[("pgbouncer_up", ())] == 1
    # PgBouncerPoolNearCapacity: busy server connections per database over the database's pool size
    assert samples[("pgbouncer_active_servers", (("database", "appdb"), ("user", "app")))] == 24
    assert samples[("pgbouncer_pool_size", (("database", "appdb"),))] == 30
    # PgBouncerClientsWaiting, and Debian's exporter's names for the rest
    assert samples[("pgbouncer_waiting_clients", (("database", "appdb"), ("user", "app")))] == 9
    assert samples[("pgbouncer_active_clients", (("database", "appdb"), ("user", "app")))] == 30
    assert samples[("pgbouncer_used_servers", ())] == 26
    assert samples[("pgbouncer_current_connections", (("database", "appdb"),))] == 26
    assert samples[("pgbouncer_max_wait_seconds", (("database", "appdb"), ("user", "app")))] == 1
    # SHOW STATS' counters (PgBouncer 1.8+ names; times in microseconds, exported in seconds)
    assert samples[("pgbouncer_queries_total", (("database", "appdb"),))] == 3400
    assert samples[("pgbouncer_transactions_total", (("database", "appdb"),))] == 1200
    assert samples[("pgbouncer_client_wait_seconds_total", (("database", "appdb"),))] == 0.5


def test_a_console_that_cannot_be_asked_gives_pgbouncer_up_0_and_the_next_scrape_reconnects():
    connections = [FakeConnection(broken=True), FakeConnection()]

    def connect():
        return connections.pop(0)

    collector = exporter.ConsoleCollector(connect)
    registry = CollectorRegistry()
    registry.register(collector)
    first = generate_latest(registry).decode()
    assert "pgbouncer_up 0.0" in first and "pgbouncer_pool_size" not in first
    second = generate_latest(registry).decode()
    assert "pgbouncer_up 1.0" in second and 'pgbouncer_pool_size{database="appdb"} 30.0' in second
    assert connections == []  # it connected again after the failure


def test_an_answer_of_an_unknown_shape_is_a_scrape_with_pgbouncer_up_0(monkeypatch):
    monkeypatch.setitem(ANSWERS, "DATABASES", [{"name": "appdb", "pool_size": "thirty"}])
    samples = scrape(FakeConnection)
    assert samples == {("pgbouncer_up", ()): 0}


def test_a_failed_connection_attempt_is_a_scrape_with_pgbouncer_up_0():
    def connect():
        raise psycopg2.OperationalError('connection to server at "127.0.0.1", port 6432 failed: Connection refused')

    samples = scrape(connect)
    assert samples == {("pgbouncer_up", ()): 0}
