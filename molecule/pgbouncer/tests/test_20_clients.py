"""Runbook steps 6, 7 and "Monitor metrics", through each PgBouncer host, with real clients.

psql and pgbench run on pgbouncer-db (PostgreSQL 15, max_connections = 100) and connect to
PgBouncer over the lab network, as the application servers would.
"""

import pytest
from pgblab import LAB, ansible_module, pgbench, pool_limit, psql, settle_pgbouncer_servers

testinfra_hosts = ["pgbouncer-bookworm", "pgbouncer-trixie"]

# The runbook's "Monitor metrics" expectations, as pgbouncer_stats thresholds.
RUNBOOK_THRESHOLDS = {
    "databases": ["appdb"],
    "min_reuse_ratio": 90,  # "Connection reuse ratio > 90%"
    "max_avg_query_time_ms": 50,  # "avg_query_time < 50ms"
    "max_pool_utilization": 80,  # alert "PgBouncer connection pool at 80% capacity"
    "max_clients_waiting": 0,
}


@pytest.fixture
def name(host):
    return host.backend.get_hostname()


def stats_args(**extra):
    args = {
        "login_host": "127.0.0.1",
        "port": 6432,
        "login_user": "pgbouncer_stats",
        "login_password": LAB["lab_pgbouncer_stats_password"],
    }
    args.update(extra)
    return args


def test_select_version_through_pgbouncer_as_the_app_user(name):
    result = psql(name, "SELECT version()")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("PostgreSQL 15"), result.stdout


def test_a_wrong_password_is_refused(name):
    result = psql(name, "SELECT 1", password="not-the-password")  # noqa: S106 - a wrong password on purpose
    assert result.returncode != 0
    assert "authentication failed" in result.stderr, result.stderr


def test_the_application_user_cannot_use_the_admin_console(name):
    result = psql(name, "SHOW STATS", dbname="pgbouncer")
    assert result.returncode != 0
    assert result.stdout == ""
    assert "FATAL" in result.stderr, result.stderr


def test_the_stats_user_can_read_the_console_but_not_administer_it(name):
    password = LAB["lab_pgbouncer_stats_password"]
    shown = psql(name, "SHOW POOLS", user="pgbouncer_stats", password=password, dbname="pgbouncer")
    assert shown.returncode == 0, shown.stderr
    refused = psql(name, "PAUSE appdb", user="pgbouncer_stats", password=password, dbname="pgbouncer")
    assert refused.returncode != 0
    assert "admin access needed" in refused.stderr, refused.stderr


def test_300_clients_share_at_most_a_pool_of_server_connections(name):
    """300 pgbench clients through PgBouncer: no failed transaction, PostgreSQL sees <= pool + reserve."""
    settle_pgbouncer_servers()
    run = pgbench(name, clients=300, seconds=12, extra="--select-only")
    assert run["rc"] == 0, run["output"]
    assert run["clients"] == 300
    assert run["failed"] == 0, run["output"]
    assert run["processed"] > 300, run["output"]
    assert run["server_connections_samples"] >= 10
    assert 0 < run["server_connections_max"] <= pool_limit(), run
    print(
        "%s: 300 clients, %.0f tps, %.1f ms, at most %d server connections"
        % (name, run["tps"], run["latency_ms"], run["server_connections_max"])
    )


def test_pgbouncer_stats_reports_reuse_above_90_percent_and_passes_the_runbook_thresholds(name):
    """After steady application-like traffic: 300 connected clients, 300 transactions/s in total.

    The lab sets stats_period to 5 s, so PgBouncer's averages cover the run's last seconds, after the
    300 logins (whose SCRAM work briefly holds up PgBouncer's single thread) are done.
    """
    run = pgbench(name, clients=300, seconds=15, jobs=2, extra="--select-only --rate=300")
    assert (run["rc"], run["failed"]) == (0, 0), run["output"]
    result = ansible_module(name, "ywmessaging.scaling.pgbouncer_stats", stats_args(thresholds=RUNBOOK_THRESHOLDS))
    stats = result[name]
    assert not stats.get("failed"), stats.get("msg")
    appdb = stats["derived"]["appdb"]
    assert appdb["transactions"] > run["processed"]
    assert 0 < appdb["avg_query_time_ms"] <= 50
    assert appdb["reuse_ratio"] > 90
    assert {c["name"]: c["status"] for c in stats["checks"]} == {
        "min_reuse_ratio": "passed",
        "max_avg_query_time_ms": "passed",
        "max_pool_utilization": "passed",
        "max_clients_waiting": "passed",
    }
    assert stats["changed"] is False
