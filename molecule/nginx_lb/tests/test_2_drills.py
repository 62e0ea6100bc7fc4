"""The runbook's "Test graceful failover", under load. wrk drives requests through nginx_lb-lb over
HTTPS while a backend is stopped and started (passive health checks), restarted inside a
drain/undrain cycle (rolling-restart.yml), and while a configuration nginx rejects is deployed.
Each drill reads the access log for where every request went, and prints what it measured."""

import re
import time

import labkit
from nginx_lb_lab import (
    FAIL_TIMEOUT,
    LB,
    LBS,
    LogFollower,
    Wrk,
    address_of,
    failed_requests,
    master_pid,
    run_playbook,
    systemd_times,
)

testinfra_hosts = [LB]

# A request that does some work on the backend (0.5 ms of CPU, then 10 ms of waiting, like an API
# call awaiting a query). Steady load without starving the 2-CPU machine the drill runs on.
URL = "https://127.0.0.1/work?cpu_ms=0.5&io_ms=10"


def worker_pids(lb=LB):
    return set(labkit.docker_exec(lb, "pgrep -f 'nginx: worker process$' || true").stdout.split())


def wait_until_served_by(log, addr, after, limit):
    """Poll the access log until addr serves a request that ended after `after`; its time or None."""
    deadline = time.time() + limit
    while time.time() < deadline:
        time.sleep(1)  # the access log is flushed every second
        log.poll()
        served = [r["msec"] for r in log.records if r["served_by"] == addr and r["msec"] > after]
        if served:
            return min(served)
    return None


def report(title, lines):
    print(f"\n--- {title}")
    for line in lines:
        print(f"    {line}")


def test_stopping_a_backend_under_load_fails_no_request_and_it_rejoins_within_fail_timeout(host):
    backend = "nginx_lb-backend-2"
    addr = address_of(backend)
    pid = master_pid()
    log = LogFollower()
    wrk = Wrk(URL)
    try:
        time.sleep(3)
        stop_began = time.time()
        labkit.docker_exec(backend, ["systemctl", "stop", "ywlab-backend"])
        stopped = time.time()
        time.sleep(6)
        labkit.docker_exec(backend, ["systemctl", "start", "ywlab-backend"])  # Type=notify: returns once it listens
        started = time.time()
        back = wait_until_served_by(log, addr, started, FAIL_TIMEOUT + 5)
        time.sleep(1)
    finally:
        figures = wrk.stop()
    time.sleep(1.5)
    log.poll()
    records = wrk.records(log)
    served_while_down = [r for r in records if r["served_by"] == addr and stopped < r["msec"] < started]
    passed_on = [r for r in records if addr in r["tried"]]
    last_served = max(r["msec"] for r in records if r["served_by"] == addr and r["msec"] <= stopped)
    report(
        f"failover drill: {backend} ({addr}) stopped under load",
        [
            f"wrk: {figures['requests']} requests, {failed_requests(figures)} failed "
            f"(errors {figures['errors']}), p99 {figures['latency_us']['p99'] / 1000:.1f} ms",
            f"last request it served ended {stopped - last_served:.3f} s before `systemctl stop` returned "
            f"(stop took {stopped - stop_began:.3f} s); requests it served while stopped: {len(served_while_down)}",
            f"requests that tried it first and were passed to another backend: {len(passed_on)}, at "
            + ", ".join(f"+{r['msec'] - stop_began:.2f}s" for r in passed_on[:12]),
            f"back in rotation {back - started:.2f} s after `systemctl start` returned (fail_timeout {FAIL_TIMEOUT} s)"
            if back
            else "NOT back in rotation",
        ],
    )
    assert figures["requests"] > 500, figures
    assert failed_requests(figures) == 0, figures
    assert all(r["status"] == 200 for r in records), {r["status"] for r in records}
    assert served_while_down == []
    assert passed_on, "no request ever tried the stopped backend: the drill did not exercise failover"
    assert back is not None and back - started <= FAIL_TIMEOUT + 1, back
    assert master_pid() == pid, "nginx was restarted"


def test_drain_restart_undrain_fails_no_request_and_sends_none_to_the_restarting_backend(host):
    backend = "nginx_lb-backend-1"
    addr = address_of(backend)
    pid = master_pid()
    log = LogFollower()
    # A reload makes old workers close their clients' keep-alive connections once the current
    # response is out; a client that already sent its next request there sees the connection
    # close (wrk counts a read error; browsers retry). So this drill opens a connection per request.
    wrk = Wrk(URL, connections=4, threads=1, headers=["Connection: close"])
    try:
        time.sleep(2)
        began = time.time()
        run = run_playbook("rolling-restart.yml", "-e", f"lab_rolling_hosts={backend}")
        ended = time.time()
        back = wait_until_served_by(log, addr, ended, 5)
        time.sleep(1)
    finally:
        figures = wrk.stop()
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    time.sleep(1.5)
    log.poll()
    records = wrk.records(log)
    restart = systemd_times(backend, "ywlab-backend", "ActiveExit", "ActiveEnter")
    down_from, down_to = restart["ActiveExit"], restart["ActiveEnter"]
    touching = [r for r in records if addr in r["hops"] and down_from <= r["msec"] <= down_to]
    retried = [r for r in records if r["tried"]]
    served = sorted(r["msec"] for r in records if r["served_by"] == addr)
    before = [t for t in served if t < restart["ActiveExit"]]
    after = [t for t in served if t > restart["ActiveEnter"]]
    report(
        f"drain drill: {backend} ({addr}) drained, restarted, undrained on {', '.join(LBS)} under load",
        [
            f"wrk (a connection per request): {figures['requests']} requests, {failed_requests(figures)} failed "
            f"(errors {figures['errors']}), p99 {figures['latency_us']['p99'] / 1000:.1f} ms",
            f"rolling-restart.yml took {ended - began:.1f} s; the backend was down for "
            f"{restart['ActiveEnter'] - restart['ActiveExit']:.2f} s",
            f"requests sent to it while it restarted: {len(touching)}; requests that needed a second backend: "
            f"{len(retried)}",
            f"out of rotation from {restart['ActiveExit'] - before[-1]:.2f} s before its stop to "
            f"{after[0] - restart['ActiveEnter']:.2f} s after its start"
            if before and after
            else "",
            f"first request after the playbook returned: {back - ended:.2f} s later" if back else "never served again",
        ],
    )
    assert figures["requests"] > 200, figures
    assert failed_requests(figures) == 0, figures
    assert all(r["status"] == 200 for r in records), {r["status"] for r in records}
    assert touching == [], touching[:5]
    assert retried == [], retried[:5]  # drained, not failed over: nobody needed a retry
    assert back is not None
    assert master_pid() == pid, "nginx was restarted"
    for lb in LBS:
        drained = labkit.docker_exec(lb, "cat /etc/nginx/ywmessaging/drained.list 2>/dev/null || true").stdout
        assert drained.strip() == ""
        assert " down;" not in labkit.docker_exec(lb, "cat /etc/nginx/ywmessaging/upstream.conf").stdout


def test_a_configuration_nginx_rejects_never_goes_live_and_fails_no_request(host):
    live = "/etc/nginx/nginx.conf /etc/nginx/ywmessaging/*.conf"
    before = labkit.docker_exec(LB, f"sha256sum {live}").stdout
    pid, workers = master_pid(), worker_pids()
    log = LogFollower()
    wrk = Wrk(URL)  # keep-alive connections: nothing here may reload nginx
    try:
        time.sleep(1)
        # Valid for the role (an nginx size), rejected by nginx: a zone must hold at least 8 pages.
        run = run_playbook("converge.yml", "--limit", LB, "-e", "nginx_lb_zone_size=1k")
        time.sleep(1)
    finally:
        figures = wrk.stop()
    time.sleep(1.5)
    log.poll()
    out = run.output
    message = re.search(r"nginx rejected the new configuration[^\n]*", out)
    report(
        "invalid configuration drill: nginx_lb_zone_size=1k",
        [
            f"ansible-playbook exit code {run.rc}",
            f"message: {message.group(0)[:400] if message else 'missing'}",
            f"wrk: {figures['requests']} requests, {failed_requests(figures)} failed (errors {figures['errors']})",
        ],
    )
    assert run.rc != 0
    assert message, out[-3000:]
    assert 'zone \\"backend\\" is too small' in message.group(0) or 'zone "backend" is too small' in message.group(0)
    assert labkit.docker_exec(LB, f"sha256sum {live}").stdout == before, "a live file changed"
    assert labkit.docker_exec(LB, "grep -rl 'backend 1k' /etc/nginx || true").stdout.strip() == "", (
        "the rejected value stayed on disk"
    )
    staging = "cd /etc/nginx/ywmessaging-staging && sha256sum nginx.conf ywmessaging/*.conf"
    staged = labkit.docker_exec(LB, staging).stdout
    assert staged.replace("  ", "  /etc/nginx/") == before, "the staging tree does not hold the live files again"
    assert master_pid() == pid and worker_pids() == workers, "nginx was reloaded or restarted"
    assert figures["requests"] > 500, figures
    assert failed_requests(figures) == 0, figures
    assert all(r["status"] == 200 for r in wrk.records(log))
