# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsing, typing, derived figures and thresholds of module_utils/pgbouncer.py.

The data are real captures of PgBouncer 1.18.0 (Debian 12) and 1.24.1 (Debian 13), replayed
through a fake psycopg2 (tests/unit/fixtures/pgbouncer/).
"""

import decimal
import importlib.util
import os

import pytest

from ansible_collections.ywmessaging.scaling.plugins.module_utils import pgbouncer as pgb

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "pgbouncer")
_spec = importlib.util.spec_from_file_location("pgbouncer_fake_console", os.path.join(FIXTURES, "fake_console.py"))
fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake)

V118_LOAD = "pgbouncer-1.18.0-under-load.json"
V118_AFTER = "pgbouncer-1.18.0-after-load.json"
V124_LOAD = "pgbouncer-1.24.1-under-load.json"
ALL = [V118_LOAD, V118_AFTER, V124_LOAD]


def read_all(capture):
    """Everything the module reads, through the same functions, from a replayed console."""
    conn = fake.FakeConnection(capture)
    conn.autocommit = True
    cur = conn.cursor()
    data = dict((what, pgb.fetch_show(cur, what)) for what in pgb.SHOW_COMMANDS)
    data["version"] = pgb.fetch_version(cur)
    return data


def derive(capture, **kwargs):
    data = read_all(capture)
    return pgb.derive_figures(data["stats"], data["pools"], data["databases"], data["users"], **kwargs)


# --- typing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "column, raw, expected",
    [
        ("total_xact_count", decimal.Decimal("154443"), 154443),
        ("avg_query_time", decimal.Decimal("925.5"), 925.5),
        ("cl_active", 46, 46),
        ("pool_size", "       15", 15),  # SHOW USERS on 1.24 pads its text pool_size
        ("value", "1000", 1000),  # SHOW CONFIG max_client_conn
        ("value", "0.5", 0.5),
        ("value", "-1", -1),
        ("default", "0777", "0777"),  # a socket mode is not the number 777
        ("value", "DISCARD ALL", "DISCARD ALL"),
        ("reserve_pool_size", "", ""),
        ("database", "2024", "2024"),  # names stay names
        ("name", "1", "1"),
        ("user", "42", "42"),
        ("connect_time", "2026-11-28 13:41:41 UTC", "2026-11-28 13:41:41 UTC"),
        ("addr", "127.0.0.1", "127.0.0.1"),
        ("force_user", None, None),
        ("value", b"30", 30),
    ],
)
def test_typed_value(column, raw, expected):
    value = pgb.typed_value(column, raw)
    assert value == expected
    assert type(value) is type(expected)


def test_numeric_stats_become_ints_not_decimals():
    # PgBouncer declares SHOW STATS columns numeric; psycopg2 hands back Decimal, which JSON cannot carry.
    for name in ALL:
        for row in read_all(fake.load(name))["stats"]:
            for column, value in row.items():
                if column != "database":
                    assert isinstance(value, int) and not isinstance(value, bool), (name, column, value)


def test_rows_keep_column_names_of_each_release():
    v118 = read_all(fake.load(V118_LOAD))
    v124 = read_all(fake.load(V124_LOAD))
    assert "total_server_assignment_count" not in v118["stats"][0]
    assert v124["stats"][0]["total_server_assignment_count"] == 148676
    assert "reserve_pool" in v118["databases"][0] and "reserve_pool_size" not in v118["databases"][0]
    assert "reserve_pool_size" in v124["databases"][0]
    assert "load_balance_hosts" in v124["pools"][0] and "load_balance_hosts" not in v118["pools"][0]
    assert "prepared_statements" in v124["servers"][0] and "id" in v124["clients"][0]
    assert "prepared_statements" not in v118["servers"][0]


def test_real_1_18_rows_are_typed():
    data = read_all(fake.load(V118_LOAD))
    assert data["version"] == "PgBouncer 1.18.0"
    appdb = [r for r in data["stats"] if r["database"] == "appdb"][0]
    assert appdb["total_xact_count"] == 154443
    assert appdb["avg_wait_time"] == 4723231
    pool = [p for p in data["pools"] if p["database"] == "appdb"][0]
    assert (pool["user"], pool["cl_active"], pool["cl_waiting"], pool["sv_active"]) == ("app_user", 46, 4, 20)
    assert len(data["clients"]) == 51 and len(data["servers"]) == 20
    server = data["servers"][0]
    assert server["port"] == 5462 and isinstance(server["remote_pid"], int)
    assert server["connect_time"] == "2026-11-28 13:41:41 UTC"
    config = dict((r["key"], r["value"]) for r in data["config"])
    assert config["default_pool_size"] == 30 and config["max_client_conn"] == 1000
    assert config["pool_mode"] == "transaction" and config["listen_addr"] == "127.0.0.1"


def test_columns_are_read_by_name_not_position():
    # Same data with every column in reverse order must give the same rows and figures.
    for name in ALL:
        capture = fake.load(name)
        shuffled = fake.reorder_columns(capture)
        assert read_all(shuffled) == read_all(capture)
        assert derive(shuffled) == derive(capture)


def test_fetch_show_runs_only_whitelisted_commands():
    conn = fake.FakeConnection(fake.load(V118_LOAD))
    conn.autocommit = True
    with pytest.raises(KeyError):
        pgb.fetch_show(conn.cursor(), "fds; SELECT 1")
    assert conn.executed == []


# --- derived figures ---------------------------------------------------------------------------


def test_derived_1_18_under_load():
    figures = derive(fake.load(V118_LOAD))
    assert list(figures) == ["appdb"]  # the admin database is left out
    app = figures["appdb"]
    assert app["transactions"] == 154443
    assert app["server_connections"] == 20
    assert app["server_assignments"] is None  # not reported before 1.23
    assert app["reuse_ratio"] == 99.99  # 1 - 20 / 154443
    assert app["clients_active"] == 46 and app["clients_waiting"] == 4
    assert app["avg_query_time_ms"] == 0.925
    # 1.18's avg_wait_time is µs of waiting per second (4723231): per transaction that is 0.305 ms
    assert app["avg_wait_time_ms"] == 0.305
    assert app["pool_utilization"] == 100.0
    assert app["pools"] == [
        {
            "user": "app_user",
            "pool_mode": "transaction",
            "pool_size": 20,
            "pool_size_source": "database",
            "server_connections": 20,
            "server_connections_active": 20,
            "clients_active": 46,
            "clients_waiting": 4,
            "maxwait_ms": 0.0,
            "utilization": 100.0,
        }
    ]


def test_derived_1_18_after_load_idle_pool():
    app = derive(fake.load(V118_AFTER))["appdb"]
    assert app["transactions"] == 310150
    assert app["server_connections"] == 20  # 20 sv_used
    assert app["server_connections_active"] == 0
    assert app["pool_utilization"] == 0.0
    assert app["clients_waiting"] == 0
    assert app["reuse_ratio"] == 99.99
    assert app["avg_wait_time_ms"] == 0.298  # 5734346 / 19246 µs


def test_derived_1_24_under_load_uses_user_pool_size_and_per_assignment_wait():
    app = derive(fake.load(V124_LOAD))["appdb"]
    assert app["transactions"] == 148698
    assert app["server_assignments"] == 148676
    assert app["server_connections"] == 15
    assert app["reuse_ratio"] == 99.99  # 1 - 15 / 148698
    assert app["clients_waiting"] == 13
    assert app["maxwait_ms"] == 1.118  # maxwait 0 s + 1118 µs
    assert app["avg_wait_time_ms"] == 0.632  # 1.23+: already per assignment
    assert app["avg_query_time_ms"] == 1.125
    (pool,) = app["pools"]
    assert (pool["pool_size"], pool["pool_size_source"]) == (15, "user")  # [users] override beats db pool_size=20
    assert pool["utilization"] == 100.0


def test_admin_db_on_request():
    figures = derive(fake.load(V118_LOAD), include_admin_db=True)
    assert sorted(figures) == ["appdb", "pgbouncer"]
    assert figures["pgbouncer"]["server_connections"] == 0


@pytest.mark.parametrize(
    "transactions, servers, expected",
    [(0, 0, None), (None, 3, None), (1000, 10, 99.0), (100, 30, 70.0), (5, 20, 0.0), (10, 0, 100.0)],
)
def test_reuse_ratio(transactions, servers, expected):
    assert pgb.reuse_ratio(transactions, servers) == expected


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"avg_wait_time": 2000, "avg_xact_count": 100}, 0.02),  # pre-1.23: 2000 µs/s over 100 xact/s
        ({"avg_wait_time": 0, "avg_xact_count": 0}, 0.0),
        ({"avg_wait_time": 500, "avg_xact_count": 0}, None),
        ({"avg_wait_time": 2000, "avg_xact_count": 100, "avg_server_assignment_count": 100}, 2.0),
        ({"avg_xact_count": 100}, None),
    ],
)
def test_avg_wait_time_ms_across_versions(row, expected):
    assert pgb.avg_wait_time_ms(row) == expected


def test_pool_size_falls_back_to_database_and_handles_unknown():
    databases = {"app": {"name": "app", "pool_size": 30}}
    users_118 = {"app_user": {"name": "app_user", "pool_mode": None}}
    users_124_unset = {"app_user": {"name": "app_user", "pool_size": ""}}
    pool = {"database": "app", "user": "app_user"}
    assert pgb.pool_size_for(pool, databases, users_118) == (30, "database")
    assert pgb.pool_size_for(pool, databases, users_124_unset) == (30, "database")
    assert pgb.pool_size_for({"database": "gone", "user": "x"}, databases, {}) == (None, None)
    figures = pgb.pool_figures({"database": "gone", "user": "x", "sv_active": 3}, databases, {})
    assert figures["utilization"] is None and figures["server_connections_active"] == 3


def test_configured_but_unused_database_has_figures_without_measurements():
    data = read_all(fake.load(V118_LOAD))
    databases = data["databases"] + [dict(data["databases"][0], name="reports")]
    figures = pgb.derive_figures(data["stats"], data["pools"], databases, data["users"])
    assert figures["reports"]["transactions"] is None
    assert figures["reports"]["reuse_ratio"] is None
    assert figures["reports"]["pools"] == []


# --- thresholds --------------------------------------------------------------------------------

RUNBOOK = {
    "min_reuse_ratio": 90.0,
    "max_avg_query_time_ms": 50.0,
    "max_avg_wait_time_ms": 10.0,
    "max_pool_utilization": 90.0,
    "max_clients_waiting": 0,
}


def test_thresholds_list_every_violation_in_one_message_1_18():
    results, message = pgb.evaluate_thresholds(derive(fake.load(V118_LOAD)), RUNBOOK)
    failed = [(r["name"], r["database"], r["measured"], r["limit"]) for r in results if r["status"] == "failed"]
    assert sorted(failed) == [
        ("max_clients_waiting", "appdb", 4, 0),
        ("max_pool_utilization", "appdb", 100.0, 90.0),
    ]
    assert message.startswith("2 PgBouncer thresholds violated: ")
    assert "max_clients_waiting (database=appdb): measured 4, limit <= 0" in message
    assert "max_pool_utilization (database=appdb, user=app_user): measured 100.0, limit <= 90.0" in message
    # the reuse ratio, query time and (correctly scaled) wait time pass
    passed = sorted(r["name"] for r in results if r["status"] == "passed")
    assert passed == ["max_avg_query_time_ms", "max_avg_wait_time_ms", "min_reuse_ratio"]


def test_thresholds_1_24_report_measured_values():
    results, message = pgb.evaluate_thresholds(derive(fake.load(V124_LOAD)), dict(RUNBOOK, max_clients_waiting=20))
    assert message.startswith("1 PgBouncer threshold violated: max_pool_utilization (database=appdb, user=app_user)")
    by_name = dict((r["name"], r) for r in results)
    assert by_name["min_reuse_ratio"]["measured"] == 99.99
    assert by_name["min_reuse_ratio"]["comparison"] == ">="
    assert by_name["max_clients_waiting"]["status"] == "passed"


def test_thresholds_pass_on_idle_pool():
    results, message = pgb.evaluate_thresholds(derive(fake.load(V118_AFTER)), RUNBOOK)
    assert message == ""
    assert [r["status"] for r in results] == ["passed"] * 5


def test_reuse_ratio_below_limit_fails():
    message = pgb.evaluate_thresholds(derive(fake.load(V118_AFTER)), {"min_reuse_ratio": 99.999})[1]
    assert message == (
        "1 PgBouncer threshold violated: min_reuse_ratio (database=appdb): measured 99.99, limit >= 99.999"
    )


def test_databases_filter_and_unknown_database():
    figures = derive(fake.load(V118_LOAD), include_admin_db=True)
    results, message = pgb.evaluate_thresholds(figures, {"max_clients_waiting": 0, "databases": ["pgbouncer", "nope"]})
    assert [(r["name"], r["database"], r["status"]) for r in results] == [
        ("database_known", "nope", "failed"),
        ("max_clients_waiting", "pgbouncer", "passed"),
    ]
    assert "appdb" not in message
    assert "database_known (database=nope): PgBouncer reports no database of that name" in message


def test_unmeasurable_figure_is_skipped_not_violated():
    figures = {"fresh": dict(derive(fake.load(V118_AFTER))["appdb"], transactions=0, reuse_ratio=None, pools=[])}
    results, message = pgb.evaluate_thresholds(figures, {"min_reuse_ratio": 90, "max_pool_utilization": 50})
    assert message == ""
    assert [(r["name"], r["status"]) for r in results] == [("min_reuse_ratio", "skipped")]


# --- connection --------------------------------------------------------------------------------

PARAMS = {
    "login_host": "127.0.0.1",
    "port": 6452,
    "login_user": "pgb_admin",
    "login_password": "secret",
    "db": "pgbouncer",
    "connect_timeout": 5,
    "ssl_mode": "prefer",
    "ca_cert": None,
}


def test_connect_uses_autocommit_and_passes_options():
    driver = fake.FakeDriver(fake.load(V118_LOAD))
    conn, err = pgb.connect(PARAMS, driver=driver)
    assert err is None
    assert conn.autocommit is True
    assert driver.connect_kwargs == {
        "host": "127.0.0.1",
        "port": 6452,
        "user": "pgb_admin",
        "password": "secret",
        "dbname": "pgbouncer",
        "connect_timeout": 5,
        "sslmode": "prefer",
        "application_name": pgb.APPLICATION_NAME,
    }


def test_connect_unix_socket_without_password():
    driver = fake.FakeDriver(fake.load(V118_LOAD))
    pgb.connect(dict(PARAMS, login_host="/var/run/postgresql", login_password=None), driver=driver)
    assert driver.connect_kwargs["host"] == "/var/run/postgresql"
    assert "password" not in driver.connect_kwargs


def test_connect_returns_error_instead_of_raising():
    driver = fake.FakeDriver(connect_error="FATAL:  not allowed")
    conn, err = pgb.connect(PARAMS, driver=driver)
    assert conn is None
    assert err.startswith("Unable to connect to PgBouncer admin console pgbouncer (host 127.0.0.1, port 6452)")
    assert "as user pgb_admin: FATAL:  not allowed" in err
    assert "admin_users or stats_users" in err
    assert "secret" not in err


def test_connect_error_without_hint():
    err = pgb.connect(PARAMS, driver=fake.FakeDriver(connect_error="Connection refused"))[1]
    assert err.endswith("Connection refused")
    assert "admin_users" not in err


def test_fake_console_rejects_non_autocommit():
    # Guards the fake itself: without autocommit psycopg2 would send BEGIN and the console would hang up.
    conn = fake.FakeConnection(fake.load(V118_LOAD))
    with pytest.raises(fake.ConsoleError):
        pgb.fetch_show(conn.cursor(), "stats")
