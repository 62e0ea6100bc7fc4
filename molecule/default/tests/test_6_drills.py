"""The operator's drills on the converged stack, run as an operator runs them: failover.yml takes one
backend out under steady load through the balancer (planned: drained, stopped, started, undrained;
kill: SIGKILL, systemd brings it back) with no failed GET, and loadtest.yml holds its rate within the
runbook's thresholds and fails naming a threshold it cannot meet; its load profile also measures one
backend straight against the balancer to all three (the lab's inventory turns loadtest_compare on),
with each backend held to a share of a core like a server of its own (tests/lab/lab.json's scaleout).
The load generator runs on the controller (the playbooks' default) and reaches the balancer at its
lab address; rates and durations are small here, they are variables."""

import os

import pytest
import yaml
from stacklab import (
    ALL_VARS,
    BACKENDS,
    DOMAIN,
    HOSTVARS,
    INVENTORY,
    LB,
    PROJECT,
    cpu_quota,
    on,
    play,
    record,
    reports,
    upstream_servers,
)

LAB = ["-e", f"drill_connect_address={HOSTVARS[LB]['lab_address']}", "-e", "drill_validate_certs=false"]


SCALEOUT = "Load testing shows 1.5-3x throughput improvement"
POOLING = "PgBouncer deployed and pooling 30 connections to 300+"


def loadtest(*extra, timeout=600):
    """loadtest.yml pointed at the lab's API (loadtest_target), the load generator at the balancer."""
    return play("loadtest.yml", "-e", f"loadtest_target={DOMAIN}", *extra, *LAB, timeout=timeout)


def record_latencies(what, loads):
    for kind, load in loads.items():
        record(f"{what} {kind}: p50/p95/p99 (ms)", f"{load['p50_ms']} / {load['p95_ms']} / {load['p99_ms']}")


def pgbouncer_pool():
    """PgBouncer's server pool as the lab's inventory sets it, or the role's defaults."""
    values = {}
    for path in (
        os.path.join(PROJECT, "roles", "pgbouncer", "defaults", "main.yml"),
        os.path.join(INVENTORY, "group_vars", "pgbouncer.yml"),
    ):
        with open(path, encoding="utf-8") as fh:
            values.update(yaml.safe_load(fh) or {})
    return {
        "pool_size": int(values["pgbouncer_default_pool_size"]),
        "reserve_pool": int(values["pgbouncer_reserve_pool_size"]),
    }


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
    run = loadtest(
        *("-e", "loadtest_profile=smoke", "-e", "loadtest_compare=false"),
        *("-e", "loadtest_rate=40", "-e", "loadtest_duration=15", "-e", "loadtest_sample_interval=3"),
    )
    assert run.rc == 0, run.tail()
    report = last_report("loadtest")
    figures = report["context"]["loadtest"]
    assert report["result"] == "PASS", report["items"]
    assert figures["rate"] >= 0.95 * 40 and figures["status_5xx"] == 0, figures
    assert figures["pgbouncer_peak"].get("server_connections", 0) > 0, figures["pgbouncer_peak"]
    items = {item["name"]: item for item in report["items"]}
    assert "Load test smoke: p95 latency under 500 ms" in items, list(items)
    # nothing compared the two paths: the checklist's item says so, it is never ticked
    assert items[SCALEOUT]["status"] == "not_checked", items[SCALEOUT]
    assert figures["balancer_peak"]["active_connections"] > 0, figures["balancer_peak"]
    record_latencies("loadtest smoke", figures["loads"])
    record("loadtest smoke: rate achieved / target (req/s)", f"{figures['rate']} / 40")
    record("loadtest smoke: PgBouncer at peak", figures["pgbouncer_peak"])
    record("loadtest smoke: run (s)", round(run.seconds, 1))


def test_loadtest_names_the_threshold_it_missed_and_its_measured_value():
    run = loadtest(
        "-e",
        "loadtest_rate=20",
        "-e",
        "loadtest_duration=6",
        "-e",
        "loadtest_p95_ms=0.001",
        "-e",
        "loadtest_compare=false",
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


def test_loadtest_load_profile_measures_three_backends_against_one_and_pgbouncer_pooling():
    # The rest of the test suite shares the machine's two cores meanwhile: the thresholds asserted
    # here are the runbook's 1.5x and PgBouncer holding several times its server connections in
    # clients; the lab's 2.5x and 300+ on a quiet machine are tests/bench/scaleout.py's.
    rate = 100  # with every backend on 0.15 of a core; 5 req/s per hey worker: 200 ms before it falls behind
    pool = pgbouncer_pool()
    min_clients = 2 * pool["pool_size"]
    # The quota stands for three servers while one backend is compared with three; it is lifted when
    # the full load starts (hey with loadtest_pool_connections connections), which measures PgBouncer:
    # on 0.15 of a core, 133 connections per backend waited seconds for the app and 3 of 10,032 reads
    # ran out of the app's 3 s pool timeout (503) in a CI run. How many client connections the pools
    # open still depends on the machine's load (CI saw 112 to 360): twice PgBouncer's server pool
    # proves the multiplexing whatever it is.
    full_load = f"hey -z .* -c {int(ALL_VARS['loadtest_pool_connections'])} "
    with cpu_quota(until=full_load):
        run = loadtest(
            *("-e", "loadtest_profile=load", "-e", "drill_worker_rate=5"),
            *("-e", f"loadtest_min_pgbouncer_clients={min_clients}"),
            *("-e", f"loadtest_rate={rate}", "-e", "loadtest_duration=20", "-e", "loadtest_sample_interval=4"),
            timeout=900,
        )
    assert run.rc == 0, run.tail()
    report = last_report("loadtest")
    figures = report["context"]["loadtest"]
    compare = figures["compare"]
    items = {item["name"]: item for item in report["items"]}
    assert report["result"] == "PASS", report["items"]
    assert figures["rate"] >= 0.95 * rate and figures["status_5xx"] == 0, figures
    # Phase 2 / Phase 1, closed loop, at least the runbook's 1.5x
    assert compare["backends"] == len(BACKENDS) and compare["ratio"] >= 1.5, compare
    assert items[SCALEOUT]["status"] == "pass" and f"{compare['ratio']}x" in items[SCALEOUT]["figure"]
    assert all(load["failed"] == 0 for load in compare["phase2"].values()), compare["phase2"]
    # many client connections on PgBouncer's pool (30 + 5 reserve server connections by default), and
    # every request of that full load answered
    pooled = compare["pgbouncer_peak"]
    assert (
        pooled["clients"] >= min_clients
        and 0 < pooled["server_connections"] <= pool["pool_size"] + pool["reserve_pool"]
    ), pooled
    assert all(load["failed"] == 0 for load in compare["full"].values()), compare["full"]
    assert items[POOLING]["status"] == "pass", items[POOLING]
    # the balancer's stub_status was read while the load ran: idle, it counts its own reader and a few requests
    # a second; the CI run saw 98 of the 400 connections open at the sample nearest the peak on a loaded machine
    assert compare["balancer_peak"]["rate"] > 50 and compare["balancer_peak"]["active_connections"] > 20, compare
    record_latencies("loadtest load", figures["loads"])
    record("loadtest load: rate achieved / target (req/s)", f"{figures['rate']} / {rate}")
    record("loadtest load: PgBouncer at peak", figures["pgbouncer_peak"])
    record("loadtest load: balancer at peak (stub_status)", figures["balancer_peak"])
    record(
        f"Phase 2 / Phase 1, closed loop, {compare['connections']} connections per backend (req/s)",
        f"{compare['phase2_rate']} / {compare['phase1_rate']} = {compare['ratio']}x",
    )
    for phase in ("phase1", "phase2", "full"):
        for kind, load in compare[phase].items():
            record(
                f"  {phase} {kind}: p50/p95/p99 (ms), failed",
                f"{load['p50_ms']} / {load['p95_ms']} / {load['p99_ms']}, {load['failed']}",
            )
    record(f"  PgBouncer at full load, {ALL_VARS['loadtest_pool_connections']} connections", items[POOLING]["figure"])
    record("  balancer at full load (stub_status)", compare["balancer_peak"])
    record("loadtest load + comparison: run (s)", round(run.seconds, 1))
