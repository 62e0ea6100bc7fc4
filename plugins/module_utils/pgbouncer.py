# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Talking to the PgBouncer admin console and making sense of what it shows.

The admin console speaks only the simple query protocol and closes the connection on any
statement it does not know, BEGIN included, so psycopg2 must run in autocommit mode.

Column sets differ between PgBouncer releases (1.18 on Debian 12, 1.24 on Debian 13, ...):
everything here reads columns by the names in ``cursor.description``, never by position, and
treats a missing column as "not reported by this version".
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import decimal
import re
import traceback

from ansible_collections.ywmessaging.scaling.plugins.module_utils import thresholds as th

PSYCOPG2_IMPORT_ERROR = None
try:
    import psycopg2

    HAS_PSYCOPG2 = True
except ImportError:  # pragma: no cover - depends on the host
    psycopg2 = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()

ADMIN_DB = "pgbouncer"
APPLICATION_NAME = "ywmessaging.scaling.pgbouncer_stats"

# SHOW commands the module may run (option value -> console command).
SHOW_COMMANDS = {
    "stats": "SHOW STATS",
    "pools": "SHOW POOLS",
    "clients": "SHOW CLIENTS",
    "servers": "SHOW SERVERS",
    "databases": "SHOW DATABASES",
    "users": "SHOW USERS",
    "config": "SHOW CONFIG",
}
DEFAULT_SHOW = ["stats", "pools", "clients", "servers", "databases"]
# What the derived figures are computed from; fetched even when not asked for in ``show``.
DERIVATION_SOURCES = ["stats", "pools", "databases", "users"]

# Columns that name or describe something: their values stay strings even when they look
# like numbers (a database called "2024", a user "1").
TEXT_COLUMNS = frozenset(
    [
        "addr",
        "application_name",
        "changeable",
        "connect_time",
        "database",
        "force_user",
        "host",
        "key",
        "link",
        "list",
        "load_balance_hosts",
        "local_addr",
        "name",
        "pool_mode",
        "ptr",
        "replication",
        "request_time",
        "state",
        "tls",
        "type",
        "user",
        "version",
    ]
)

# SHOW POOLS columns that count server connections, per state. Older releases lack some.
SERVER_STATE_COLUMNS = (
    "sv_active",
    "sv_active_cancel",
    "sv_being_canceled",
    "sv_idle",
    "sv_used",
    "sv_tested",
    "sv_login",
)
# Of those, the connections that cannot take a new client right now.
SERVER_BUSY_COLUMNS = ("sv_active", "sv_active_cancel", "sv_being_canceled")

_INT_RE = re.compile(r"^-?(0|[1-9][0-9]*)$")
_FLOAT_RE = re.compile(r"^-?(0|[1-9][0-9]*)\.[0-9]+$")


# ---------------------------------------------------------------------------------------------
# Connection


def connection_argument_spec():
    """Options shared by modules that talk to the PgBouncer admin console."""
    return dict(
        login_host=dict(type="str", aliases=["host"]),
        port=dict(type="int", default=6432, aliases=["login_port"]),
        login_user=dict(type="str", default="pgbouncer", aliases=["user"]),
        login_password=dict(type="str", no_log=True, aliases=["password"]),
        db=dict(type="str", default=ADMIN_DB, aliases=["login_db"]),
        connect_timeout=dict(type="int", default=10),
        ssl_mode=dict(
            type="str", default="prefer", choices=["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]
        ),
        ca_cert=dict(type="path", aliases=["ssl_rootcert"]),
    )


def connect_kwargs(params):
    """psycopg2.connect() keyword arguments from module parameters (unset ones left out)."""
    kwargs = {
        "host": params.get("login_host"),
        "port": params.get("port"),
        "user": params.get("login_user"),
        "password": params.get("login_password"),
        "dbname": params.get("db") or ADMIN_DB,
        "connect_timeout": params.get("connect_timeout"),
        "sslmode": params.get("ssl_mode"),
        "sslrootcert": params.get("ca_cert"),
        "application_name": APPLICATION_NAME,
    }
    return dict((k, v) for k, v in kwargs.items() if v not in (None, ""))


def describe_target(params):
    host = params.get("login_host") or "the default unix socket directory"
    return "PgBouncer admin console %s (host %s, port %s) as user %s" % (
        params.get("db") or ADMIN_DB,
        host,
        params.get("port"),
        params.get("login_user"),
    )


def connect(params, driver=None):
    """Open an autocommit connection to the admin console.

    Returns ``(conn, None)`` or ``(None, error message)``; never raises for connection errors.
    """
    driver = driver or psycopg2
    if driver is None:
        return None, "psycopg2 is required to talk to PgBouncer"
    try:
        conn = driver.connect(**connect_kwargs(params))
        # Nothing may wrap our SHOW commands in a transaction: the console drops the connection on BEGIN.
        conn.autocommit = True
    except Exception as e:  # psycopg2.Error and friends; the message is what the operator needs
        text = str(e).strip()
        hint = ""
        if "not allowed" in text:
            hint = " (PgBouncer lets only users listed in admin_users or stats_users into the %s console)" % (
                params.get("db") or ADMIN_DB
            )
        return None, "Unable to connect to %s: %s%s" % (describe_target(params), text, hint)
    return conn, None


# ---------------------------------------------------------------------------------------------
# Reading SHOW output


def typed_value(column, value):
    """Turn one console value into a JSON-friendly Python value.

    Numbers declared numeric by PgBouncer (int4/int8/numeric) become int, or float when not
    integral. Text values that are plain decimal numbers ("30", "       15") become numbers too,
    except in columns that name things (TEXT_COLUMNS); a value with a leading zero such as the
    socket mode "0777" stays a string. Timestamps and everything else stay strings.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "replace")
    if not isinstance(value, str) or column in TEXT_COLUMNS:
        return value
    text = value.strip()
    if _INT_RE.match(text):
        return int(text)
    if _FLOAT_RE.match(text):
        return float(text)
    return value


def column_names(description):
    """Column names from a DB-API cursor.description (psycopg2 Column objects or plain tuples)."""
    return [getattr(col, "name", None) or col[0] for col in description]


def rows_to_dicts(description, rows):
    """List of {column: typed value} dicts, columns matched by name."""
    names = column_names(description)
    return [dict((name, typed_value(name, value)) for name, value in zip(names, row)) for row in rows]


def fetch_show(cursor, what):
    """Run one whitelisted SHOW command and return its rows as typed dicts."""
    cursor.execute(SHOW_COMMANDS[what])
    if cursor.description is None:
        return []
    return rows_to_dicts(cursor.description, cursor.fetchall())


def fetch_version(cursor):
    """PgBouncer's version string (``PgBouncer 1.18.0``), or None when the console does not say."""
    cursor.execute("SHOW VERSION")
    if cursor.description is None:
        return None
    rows = cursor.fetchall()
    if not rows:
        return None
    return str(rows[0][0])


# ---------------------------------------------------------------------------------------------
# Derived figures


def _number(row, column):
    """A numeric column's value, or None when the column is absent or not a number."""
    if row is None:
        return None
    value = row.get(column)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _sum(rows, columns):
    total = 0
    for row in rows:
        for column in columns:
            total += _number(row, column) or 0
    return total


def _ms(microseconds):
    return None if microseconds is None else round(microseconds / 1000.0, 3)


def reuse_ratio(transactions, server_connections):
    """Percentage of transactions that did not need a new server connection.

    ``100 * (1 - server_connections / transactions)``, floored at 0; None without transactions.
    """
    if not transactions:
        return None
    return round(max(0.0, 100.0 * (1.0 - float(server_connections) / transactions)), 2)


def pool_size_for(pool, databases_by_name, users_by_name):
    """The pool size PgBouncer applies to a (database, user) pool, and where it comes from.

    PgBouncer 1.24+ lets a user carry its own pool_size ([users] section), which wins over the
    database's; SHOW USERS on older releases has no pool_size column. SHOW DATABASES already
    reports the database's pool_size with default_pool_size filled in.
    """
    user_size = _number(users_by_name.get(pool.get("user")), "pool_size")
    if user_size is not None and user_size >= 0:
        return int(user_size), "user"
    db_size = _number(databases_by_name.get(pool.get("database")), "pool_size")
    if db_size is not None and db_size >= 0:
        return int(db_size), "database"
    return None, None


def avg_wait_time_ms(stats_row):
    """Average time a client waited for a server connection, in ms, across versions.

    From PgBouncer 1.23 avg_wait_time is the mean wait per server assignment (microseconds).
    Before 1.23 it is microseconds of waiting accumulated per second of wall time, which is not
    a per-client figure: divided by avg_xact_count (transactions per second) it becomes the
    mean wait per transaction, which is the wait per assignment in transaction pooling.
    """
    wait = _number(stats_row, "avg_wait_time")
    if wait is None:
        return None
    if "avg_server_assignment_count" in stats_row:
        return _ms(wait)
    xacts_per_second = _number(stats_row, "avg_xact_count")
    if not xacts_per_second:
        return 0.0 if not wait else None
    return _ms(float(wait) / xacts_per_second)


def pool_figures(pool, databases_by_name, users_by_name):
    size, source = pool_size_for(pool, databases_by_name, users_by_name)
    busy = _sum([pool], SERVER_BUSY_COLUMNS)
    utilization = None
    if size:
        utilization = round(100.0 * busy / size, 2)
    return {
        "user": pool.get("user"),
        "pool_mode": pool.get("pool_mode"),
        "pool_size": size,
        "pool_size_source": source,
        "server_connections": _sum([pool], SERVER_STATE_COLUMNS),
        "server_connections_active": busy,
        "clients_active": _number(pool, "cl_active"),
        "clients_waiting": _number(pool, "cl_waiting"),
        "maxwait_ms": maxwait_ms(pool),
        "utilization": utilization,
    }


def maxwait_ms(pool):
    seconds = _number(pool, "maxwait")
    if seconds is None:
        return None
    return round(seconds * 1000.0 + (_number(pool, "maxwait_us") or 0) / 1000.0, 3)


def _max(values):
    present = [v for v in values if v is not None]
    return max(present) if present else None


def derive_figures(stats, pools, databases, users=None, include_admin_db=False):
    """Per-database figures, keyed by database name (see the module's RETURN for each key)."""
    stats_by_db = dict((row.get("database"), row) for row in stats or [])
    databases_by_name = dict((row.get("name"), row) for row in databases or [])
    users_by_name = dict((row.get("name"), row) for row in users or [])
    pools_by_db = {}
    for pool in pools or []:
        pools_by_db.setdefault(pool.get("database"), []).append(pool)

    names = set(stats_by_db) | set(databases_by_name) | set(pools_by_db)
    names.discard(None)
    if not include_admin_db:
        names.discard(ADMIN_DB)

    derived = {}
    for name in sorted(names):
        row = stats_by_db.get(name) or {}
        db_pools = pools_by_db.get(name, [])
        per_pool = [pool_figures(p, databases_by_name, users_by_name) for p in db_pools]
        transactions = _number(row, "total_xact_count")
        server_connections = _sum(db_pools, SERVER_STATE_COLUMNS)
        derived[name] = {
            "transactions": transactions,
            "queries": _number(row, "total_query_count"),
            "server_assignments": _number(row, "total_server_assignment_count"),
            "server_connections": server_connections,
            "server_connections_active": _sum(db_pools, SERVER_BUSY_COLUMNS),
            "reuse_ratio": reuse_ratio(transactions, server_connections),
            "clients_active": _sum(db_pools, ["cl_active"]),
            "clients_waiting": _sum(db_pools, ["cl_waiting"]),
            "maxwait_ms": _max(p["maxwait_ms"] for p in per_pool),
            "avg_query_time_ms": _ms(_number(row, "avg_query_time")),
            "avg_xact_time_ms": _ms(_number(row, "avg_xact_time")),
            "avg_wait_time_ms": avg_wait_time_ms(row) if row else None,
            "pool_utilization": _max(p["utilization"] for p in per_pool),
            "pools": per_pool,
        }
    return derived


# ---------------------------------------------------------------------------------------------
# Thresholds

# threshold option -> (derived figure, comparison); pool utilisation is judged per pool.
DATABASE_THRESHOLDS = (
    ("min_reuse_ratio", "reuse_ratio", "min"),
    ("max_avg_query_time_ms", "avg_query_time_ms", "max"),
    ("max_avg_xact_time_ms", "avg_xact_time_ms", "max"),
    ("max_avg_wait_time_ms", "avg_wait_time_ms", "max"),
    ("max_clients_waiting", "clients_waiting", "max"),
    ("max_maxwait_ms", "maxwait_ms", "max"),
)
POOL_THRESHOLDS = (("max_pool_utilization", "utilization", "max"),)
THRESHOLD_OPTIONS = tuple(t[0] for t in DATABASE_THRESHOLDS + POOL_THRESHOLDS)


def threshold_checks(derived, limits):
    """Build (name, measured, limit, comparison, labels) checks for every configured limit.

    ``limits`` is the module's ``thresholds`` option. ``limits['databases']`` restricts the
    databases judged; a database named there that PgBouncer does not know becomes a failed result.
    Returns ``(checks, problems)``: checks for thresholds.evaluate(), problems as failed results.
    """
    limits = limits or {}
    wanted = limits.get("databases")
    problems = []
    if wanted:
        names = []
        for name in wanted:
            if name in derived:
                names.append(name)
            else:
                problems.append(
                    th.failed_result("database_known", "PgBouncer reports no database of that name", database=name)
                )
    else:
        names = sorted(derived)

    checks = []
    for name in names:
        figures = derived[name]
        for option, figure, comparison in DATABASE_THRESHOLDS:
            if limits.get(option) is not None:
                checks.append((option, figures.get(figure), limits[option], comparison, {"database": name}))
        for option, figure, comparison in POOL_THRESHOLDS:
            if limits.get(option) is None:
                continue
            for pool in figures["pools"]:
                labels = {"database": name, "user": pool["user"]}
                checks.append((option, pool.get(figure), limits[option], comparison, labels))
    return checks, problems


def evaluate_thresholds(derived, limits):
    """Evaluate every configured threshold; return (results, failure message or '')."""
    checks, problems = threshold_checks(derived, limits)
    results = problems + th.evaluate(checks)
    return results, th.failure_message(results, what="PgBouncer threshold")
