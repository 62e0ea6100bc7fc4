"""loadtest.yml's checks on what the operator asked for, run for real on the controller: they stop
the run before any request is sent or any host is reached, and name each variable with what is
allowed. The managed hosts are names only (no address is ever contacted)."""

import pytest
from controller_play import controller_play

INVENTORY = {
    "all": {
        "vars": {
            "api_domain": "api.example.test",
            "verify_pgbouncer_stats_user": "stats",
            "verify_pgbouncer_stats_password": "Stats-Pw-kept-out-of-output",
        },
        "children": {
            "backend": {"hosts": {"backend-1": {"ansible_host": "192.0.2.11"}, "backend-2": {}}},
            "pgbouncer": {"hosts": {"pgbouncer-1": {"ansible_host": "192.0.2.12"}}},
            "lb": {"hosts": {"lb-1": {"ansible_host": "192.0.2.13"}}},
        },
        "hosts": {"localhost": {"ansible_connection": "local"}},
    },
}


@pytest.fixture
def loadtest(tmp_path):
    def run(*extra):
        return controller_play("loadtest.yml", INVENTORY, tmp_path / "reports", *extra)

    return run


def test_every_bad_comparison_setting_is_named_in_one_message_before_any_host(loadtest):
    bad = {
        "loadtest_compare_backend": ("pgbouncer-1", "loadtest_compare_backend must name one host of the group backend"),
        "loadtest_compare_url": (
            "http://192.0.2.11:3000/health",
            "loadtest_compare_url must be http(s)://address:port",
        ),
        "loadtest_compare_connections": ("0", "loadtest_compare_connections must be 1-5000, got 0"),
        "loadtest_compare_seconds": ("2", "loadtest_compare_seconds must be 5-600 seconds, got 2"),
        "loadtest_pool_connections": ("9000", "loadtest_pool_connections must be 1-5000, got 9000"),
        "loadtest_min_scaleout": ("0", "loadtest_min_scaleout must be above 0"),
        "loadtest_min_pgbouncer_clients": ("-1", "loadtest_min_pgbouncer_clients must be 0-100000, got -1"),
    }
    extra = ["-e", "loadtest_target=api.example.test", "-e", "loadtest_compare=true"]
    for name, (value, _says) in bad.items():
        extra += ["-e", f"{name}={value}"]
    run = loadtest(*extra)
    assert run.returncode != 0
    assert "input problem(s), found before any host was changed" in run.text, run.output[-3000:]
    missing = [says for _value, says in bad.values() if says not in run.text]
    assert not missing, f"not named: {missing}\n{run.output[-3000:]}"
    assert "Stats-Pw-kept-out-of-output" not in run.output
    # only the controller ran anything: no request, no host reached
    assert "backend-1" not in run.output.split("PLAY RECAP")[-1], run.output[-1500:]


def test_the_comparison_backend_is_not_asked_for_when_nothing_is_compared(loadtest):
    run = loadtest("-e", "loadtest_target=other.example.test", "-e", "loadtest_compare_backend=pgbouncer-1")
    assert run.returncode != 0
    assert "Refusing to load api.example.test" in run.text, run.output[-3000:]
    assert "loadtest_compare_backend" not in run.text, run.output[-3000:]
