"""The operator's drills on the converged stack, run as an operator runs them: failover.yml takes one
backend out under steady load through the balancer (planned: drained, stopped, started, undrained;
kill: SIGKILL, systemd brings it back) with no failed GET, and loadtest.yml holds its rate within the
runbook's thresholds and fails naming a threshold it cannot meet. The load generator runs on the
controller (the playbooks' default) and reaches the balancer at its lab address; rates and durations
are small here, they are variables."""

import pytest
from stacklab import BACKENDS, DOMAIN, HOSTVARS, LB, on, play, record, reports, upstream_servers

LAB = ["-e", f"drill_connect_address={HOSTVARS[LB]['lab_address']}", "-e", "drill_validate_certs=false"]


def last_report(kind_of_drill):
    report = reports()[-1]
    assert report["context"].get("drill") == kind_of_drill, report["context"]
    return report


def assert_all_back():
    assert not [line for line in upstream_servers() if " down" in line], upstream_servers()
    for backend in BACKENDS:
        assert on(backend, "systemctl is-active ywm-api").stdout.strip() == "active"


def test_failover_refuses_a_host_outside_the_backend_group_before_touching_any_host():
    run = play("failover.yml", "-e", "failover_backend=db", *LAB, timeout=300)
    assert run.rc != 0
    assert "failover_backend must name one host of the group backend" in run.output, run.tail()
    assert set(run.recap) == {"localhost"}, run.recap  # no other host was reached


@pytest.mark.parametrize(("mode", "backend"), [("planned", BACKENDS[1]), ("kill", BACKENDS[2])])
def test_failover_drill_loses_no_get_and_the_backend_returns_to_rotation(mode, backend):
    run = play(
        "failover.yml",
        *("-e", f"failover_backend={backend}", "-e", f"failover_mode={mode}"),
        *("-e", "failover_rate=15", "-e", "failover_hold_seconds=5", "-e", "failover_settle_seconds=8"),
        *LAB,
        timeout=600,
    )
    assert run.rc == 0, run.tail()
    report = last_report("failover")
    figures = report["context"]["failover"]
    assert report["result"] == "PASS", report["items"]
    assert figures["failed_gets"] == 0 and figures["requests"] > 100, figures
    assert figures["back_in_rotation_s"] is not None, figures
    assert set(figures["loads"]) == {"health", "read"}, figures["loads"]  # authenticated reads too
    record(f"failover {mode} ({backend}): failed GETs / requests", f"{figures['failed_gets']} / {figures['requests']}")
    record(f"failover {mode}: requests reached it until (s after stop)", figures["out_of_rotation_s"])
    record(f"failover {mode}: serving again after (s)", figures["back_in_rotation_s"])
    record(f"failover {mode}: its share after return (%)", figures["share_after_back_pct"])
    record(f"failover {mode}: drill run (s)", round(run.seconds, 1))
    assert_all_back()


def test_loadtest_smoke_passes_and_fills_the_report():
    run = play(
        "loadtest.yml",
        *("-e", f"loadtest_target={DOMAIN}", "-e", "loadtest_profile=smoke"),
        *("-e", "loadtest_rate=40", "-e", "loadtest_duration=15", "-e", "loadtest_sample_interval=3"),
        *LAB,
        timeout=600,
    )
    assert run.rc == 0, run.tail()
    report = last_report("loadtest")
    figures = report["context"]["loadtest"]
    assert report["result"] == "PASS", report["items"]
    assert figures["rate"] >= 0.95 * 40 and figures["status_5xx"] == 0, figures
    assert figures["pgbouncer_peak"].get("server_connections", 0) > 0, figures["pgbouncer_peak"]
    names = [item["name"] for item in report["items"]]
    assert "Load test smoke: p95 latency under 500 ms" in names, names
    for kind, load in figures["loads"].items():
        record(f"loadtest smoke {kind}: p50/p95/p99 (ms)", f"{load['p50_ms']} / {load['p95_ms']} / {load['p99_ms']}")
    record("loadtest smoke: rate achieved / target (req/s)", f"{figures['rate']} / 40")
    record("loadtest smoke: PgBouncer at peak", figures["pgbouncer_peak"])
    record("loadtest smoke: run (s)", round(run.seconds, 1))


def test_loadtest_names_the_threshold_it_missed_and_its_measured_value():
    run = play(
        "loadtest.yml",
        *("-e", f"loadtest_target={DOMAIN}", "-e", "loadtest_rate=20", "-e", "loadtest_duration=6"),
        *("-e", "loadtest_p95_ms=0.001"),
        *LAB,
        timeout=600,
    )
    assert run.rc != 0
    assert "missed: p95 latency" in run.output and "(threshold 0.001 ms)" in run.output, run.tail()
    assert "5xx responses" not in run.output.split("missed:")[-1].split("Report:")[0], run.tail()
    assert last_report("loadtest")["result"] == "FAIL"


def test_loadtest_refuses_a_target_it_was_not_pointed_at():
    run = play("loadtest.yml", "-e", "loadtest_target=api.example.com", *LAB, timeout=300)
    assert run.rc != 0
    assert f"Refusing to load {DOMAIN}" in run.output, run.tail()
    assert set(run.recap) == {"localhost"}, run.recap
