"""Fail safe: bad input is refused before anything changes, with one message naming every bad variable;
a dependency outage that makes every backend answer 503 on its deep health check takes none out of
rotation; concurrent drains from a rolling batch neither lose a `down` mark nor drain the last
server; an undrain heals a run killed between drain and undrain and costs nothing otherwise."""

import json
import re
import shlex
import time
from pathlib import Path

import labkit
from nginx_lb_lab import (
    BACKENDS,
    CA,
    FAIL_TIMEOUT,
    LB,
    LBS,
    SERVER_NAME,
    LogFollower,
    address_of,
    run_playbook,
)

testinfra_hosts = [LB]

MAX_FAILS = 3  # role default nginx_lb_max_fails
UPSTREAM = "/etc/nginx/ywmessaging/upstream.conf"
DRAINED = "/etc/nginx/ywmessaging/drained.list"
SCRIPT = Path(labkit.PROJECT) / "roles/nginx_lb/files/nginx_lb_backend_state.py"


# --- helpers ------------------------------------------------------------------------------------


def host_state(lb=LB):
    """Digest of every file under /etc/nginx (and the lab certificate) and nginx's MainPID: untouched if equal."""
    digests = "find /etc/nginx /etc/ssl/ywlab -type f -print0 | sort -z | xargs -0 sha256sum"
    files = labkit.docker_exec(lb, digests).stdout
    pid = labkit.docker_exec(lb, "systemctl show --property=MainPID --value nginx").stdout.strip()
    return files, pid


def messages(run, prefix):
    """The messages of failed tasks that start with prefix (results are one JSON line each)."""
    found = []
    for line in run.stdout.splitlines():
        if "FAILED! => {" in line:
            msg = json.loads(line.split("FAILED! => ", 1)[1]).get("msg", "")
            if isinstance(msg, str) and msg.startswith(prefix):
                found.append(msg)
    return found


def down_servers(lb):
    upstream = labkit.docker_exec(lb, f"cat {UPSTREAM}").stdout
    return set(re.findall(r"(?m)^\s*server [^;#]* down;\s*# nginx_lb backend=(\S+)$", upstream))


def drained_list(lb):
    return set(labkit.docker_exec(lb, f"cat {DRAINED} 2>/dev/null || true").stdout.split())


def worker_pids(lb):
    return set(labkit.docker_exec(lb, "pgrep -f '^nginx: worker process' || true").stdout.split())


def hooks(hook, hosts="backend", *args):
    return run_playbook("hooks.yml", "-e", f"lab_hook={hook}", "-e", f"lab_hosts={hosts}", *args)


def assert_refused_untouched(run, before, variables):
    """The run failed before any change, and its one validation message names every variable."""
    assert run.rc != 0, run.stdout[-3000:]
    found = messages(run, "ywmessaging.scaling.nginx_lb: ")
    assert found, run.stdout[-3000:]
    message = found[0]
    for variable in variables:
        assert variable in message, (variable, message)
    assert "Install nginx from the distribution" not in run.stdout  # stopped before any change
    assert host_state() == before, "a file under /etc/nginx or nginx's MainPID changed"
    return message


# --- bad input ----------------------------------------------------------------------------------


def test_bad_input_of_every_class_is_refused_in_one_message_before_the_host_changes(host):
    before = host_state()
    bad = {
        "nginx_lb_server_name": "api.ywlab.test; return 200 pwned",
        "nginx_lb_server_aliases": ["www.ywlab.test", "bad alias.ywlab.test"],
        "nginx_lb_upstream_name": "backend;evil",
        "nginx_lb_upstream_header": "X-Upstream Addr",
        "nginx_lb_client_max_body_size": "10x",
        "nginx_lb_zone_size": "64 k",
        "nginx_lb_acme_webroot": "var/www/acme",
        "nginx_lb_access_log": "/var/log/nginx/a.log; error_log /tmp/x",
        "nginx_lb_upstream_header_networks": ["10.0.0.0/8", "everyone", "10.0.0.0/33", "1::2::3"],
        "nginx_lb_internal_networks": ["10.1.0.0/16", "0.0.0.0/-1"],
        "nginx_lb_internal_paths": ["/metrics", "/admin; allow all", "/health/detailed", "/"],
        "nginx_lb_proxy_next_upstream": ["error", "timeout", "http_503"],
        "nginx_lb_liveness_next_upstream": ["error", "non_idempotent"],
        "nginx_lb_proxy_next_upstream_tries": 0,
        "nginx_lb_upstream_servers": [{"name": "x", "address": "10.0.0.1;evil"}, {"name": "y", "address": "10.0.0.2"}],
    }
    run = run_playbook("apply.yml", "--limit", LB, "-e", json.dumps(bad))
    message = assert_refused_untouched(run, before, [*bad, "upstream server addresses"])
    for detail in (
        '"everyone"',
        '"10.0.0.0/33"',
        '"1::2::3"',
        'x="10.0.0.1;evil"',
        "got http_503",
        '"0.0.0.0/-1"',
        '"/admin; allow all"',
        '"/health/detailed", "/"]',
    ):
        assert detail in message, (detail, message)
    assert '"10.0.0.0/8"' not in message  # the good network is not reported
    print(f"\n--- one message for {len(bad)} bad variables: {message[:600]}...")


def test_a_server_name_with_a_space_is_refused_by_the_validate_entry_point_in_check_mode(host):
    before = host_state()
    run = run_playbook(
        "validate.yml", "--check", "-e", json.dumps({"nginx_lb_server_name": "api.ywlab.test evil.test"})
    )
    message = assert_refused_untouched(run, before, ["nginx_lb_server_name"])
    assert "api.ywlab.test evil.test" in message


def test_a_server_name_with_a_newline_is_refused(host):
    before = host_state()
    run = run_playbook(
        "apply.yml", "--limit", LB, "-e", json.dumps({"nginx_lb_server_name": "api.ywlab.test\nreturn 200"})
    )
    message = assert_refused_untouched(run, before, ["nginx_lb_server_name"])
    assert "return 200" in message


def test_wrong_types_are_refused_by_the_argument_spec_from_the_validate_entry_point(host):
    before = host_state()
    run = run_playbook("validate.yml", "-e", json.dumps({"nginx_lb_max_fails": "many", "nginx_lb_balancing": "random"}))
    assert_refused_untouched(run, before, ["nginx_lb_max_fails", "nginx_lb_balancing"])


def test_the_validate_entry_point_passes_the_scenario_s_inventory_and_changes_nothing(host):
    before = host_state()
    run = run_playbook("validate.yml", "--check")
    assert run.rc == 0, run.stdout[-3000:]
    assert all(c["changed"] == 0 for c in run.recap.values()), run.recap
    assert host_state() == before


# --- concurrent drains, the last server, the kill-between heal ------------------------------------


def test_two_backends_drained_at_once_both_end_up_down_and_both_come_back(host):
    pair = ["nginx_lb-backend-1", "nginx_lb-backend-2"]
    try:
        run = hooks("drain", ":".join(pair))
        assert run.rc == 0, run.stdout[-4000:]
        for lb in LBS:
            assert down_servers(lb) == set(pair), lb  # no `down` mark lost
            assert drained_list(lb) == set(pair), lb
            assert labkit.docker_exec(lb, ["nginx", "-t", "-q"]).returncode == 0
    finally:
        back = hooks("undrain", ":".join(pair))
    assert back.rc == 0, back.stdout[-4000:]
    for lb in LBS:
        assert down_servers(lb) == set() and drained_list(lb) == set(), lb


def test_draining_all_three_at_once_refuses_exactly_one_and_a_later_undrain_heals_the_rest(host):
    # All three backends of a batch drain at once: exactly one is refused, one server stays in rotation.
    run = hooks("drain", "backend")
    refused = set(re.findall(r"refusing to drain (\S+): no other server would be left in rotation", run.stdout))
    try:
        assert run.rc != 0
        assert len(refused) == 1, (refused, run.stdout[-4000:])
        failed = {h for h, c in run.recap.items() if c["failed"]}
        assert failed == refused, (failed, refused)
        for lb in LBS:
            assert down_servers(lb) == set(BACKENDS) - refused, lb  # the same two on both balancers
            assert drained_list(lb) == set(BACKENDS) - refused, lb
        # That run stopped with two backends drained, as a run killed before its undrain does. The next
        # normal run calls the undrain hook for every ready backend: the two come back, the third costs nothing.
    finally:
        heal = hooks("undrain", "backend")
    assert heal.rc == 0, heal.stdout[-4000:]
    counts = heal.recap
    (kept,) = refused
    assert counts[kept]["changed"] == 0, counts
    assert all(counts[b]["changed"] > 0 for b in set(BACKENDS) - refused), counts
    for lb in LBS:
        assert down_servers(lb) == set() and drained_list(lb) == set(), lb


def test_an_undrain_of_backends_in_rotation_changes_nothing_and_reloads_nothing(host):
    def written_and_workers(lb):
        return labkit.docker_exec(lb, f"stat -c %Y {UPSTREAM}").stdout, worker_pids(lb)

    before = {lb: written_and_workers(lb) for lb in LBS}
    run = hooks("undrain", "backend")
    assert run.rc == 0, run.stdout[-3000:]
    assert all(c["changed"] == 0 for c in run.recap.values()), run.recap
    for lb in LBS:
        assert written_and_workers(lb) == before[lb], f"{lb} was reloaded"


def test_a_drain_in_check_mode_reports_the_change_and_makes_none(host):
    before = {lb: host_state(lb) for lb in LBS}
    run = hooks("drain", "nginx_lb-backend-3", "--check")
    assert run.rc == 0, run.stdout[-3000:]
    assert run.host("nginx_lb-backend-3")["changed"] > 0
    for lb in LBS:
        assert host_state(lb) == before[lb]


def test_a_load_balancer_not_configured_yet_or_not_knowing_the_backend_is_skipped_by_the_hooks(host):
    script = SCRIPT.read_text()
    for extra, state in ((["--conf-dir", "/nonexistent"], "unconfigured"), ([], "unknown")):
        argv = ["python3", "-c", script, "drain", "nginx_lb-backend-99", "--unknown", "skip", *extra]
        proc = labkit.docker_exec(LB, argv)
        result = json.loads(proc.stdout)
        assert result["changed"] is False and result["state"] == state, result
    proc = labkit.docker_exec(LB, ["python3", "-c", script, "drain", "nginx_lb-backend-99"], check=False)
    assert proc.returncode == 1 and "is not in the upstream" in json.loads(proc.stdout)["msg"]


# --- a dependency outage must not eject healthy backends ----------------------------------------


def fault(backend, path, status):
    port = BACKENDS[backend]
    labkit.docker_exec(
        LB, f"curl -sf --max-time 5 'http://{backend}:{port}/_fault?path={path}&status={status}' >/dev/null"
    )


def poll(paths, rounds):
    """GET each path once per round through the balancer (HTTPS), sequentially; {path: [status, ...]}."""
    urls = " ".join(shlex.quote(p) for p in paths)
    script = (
        f"for i in $(seq {rounds}); do for p in {urls}; do "
        f"echo \"$p $(curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 --cacert {CA} "
        f'--resolve {SERVER_NAME}:443:127.0.0.1 "https://{SERVER_NAME}$p")"; done; done'
    )
    codes = {p: [] for p in paths}
    for line in labkit.docker_exec(LB, script, timeout=600).stdout.splitlines():
        path, code = line.split()
        codes[path].append(int(code))
    return codes


def test_every_backend_answering_503_on_its_deep_health_check_ejects_none_while_a_killed_one_is_skipped(host):
    # Redis down: every backend answers /health/detailed and /health/ready with 503 (correctly). Before
    # this role counted only connection errors there, a handful of such polls marked every backend failed
    # and nginx answered 502 on every path, /health included, for fail_timeout, again and again.
    killed = "nginx_lb-backend-2"
    alive = [b for b in BACKENDS if b != killed]
    paths = ["/health/detailed", "/health/ready", "/health", "/work?cpu_ms=0&io_ms=1", "/api/messages"]
    log = LogFollower()
    try:
        for backend in BACKENDS:
            fault(backend, "/health/detailed", 503)
            fault(backend, "/health/ready", 503)
        # the process dies, no goodbye
        labkit.docker_exec(killed, ["systemctl", "kill", "--signal=KILL", "ywlab-backend"])
        began = time.time()
        codes = poll(paths, 25)
        took = time.time() - began
    finally:
        for backend in alive:
            fault(backend, "/health/detailed", 0)
            fault(backend, "/health/ready", 0)
        # faults live in memory: a new process has none
        labkit.docker_exec(killed, ["systemctl", "start", "ywlab-backend"])
    time.sleep(1.5)  # the access log is flushed every second
    log.poll()
    records = [r for r in log.records if r["msec"] >= began - 1]
    killed_addr = address_of(killed)
    tried_killed = [r for r in records if killed_addr in r["tried"]]
    deep = [r for r in records if r["uri"] == "/health/detailed"]
    served_deep = {r["served_by"] for r in deep}
    client_502 = [r for r in records if r["status"] == 502]
    print(
        f"\n--- dependency outage drill: every backend answers 503 on /health/detailed and /health/ready, "
        f"{killed} killed; {sum(len(c) for c in codes.values())} GETs through the balancer in {took:.1f} s"
    )
    for path, got in codes.items():
        print(f"    {path}: " + ", ".join(f"{n} x {c}" for c, n in sorted({c: got.count(c) for c in got}.items())))
    print(
        f"    502 answers: {len(client_502)}; requests that tried the killed backend first and were passed on: "
        f"{len(tried_killed)}; backends answering /health/detailed: {sorted(served_deep)}"
    )
    assert set(codes["/health/detailed"]) == {503}, codes["/health/detailed"]  # the application's answer
    assert set(codes["/health/ready"]) == {503}, codes["/health/ready"]
    assert set(codes["/health"]) == {200}, codes["/health"]
    assert set(codes["/work?cpu_ms=0&io_ms=1"]) == {200}, codes["/work?cpu_ms=0&io_ms=1"]
    assert set(codes["/api/messages"]) == {200}, codes["/api/messages"]
    assert client_502 == [], client_502[:3]
    # Both live backends kept answering the deep check: neither was taken out of rotation by its 503s.
    assert served_deep == {address_of(b) for b in alive}, served_deep
    # The killed one is still skipped: tried at most max_fails times per fail_timeout, never served.
    assert tried_killed, "no request tried the killed backend: the drill did not exercise it"
    assert len(tried_killed) <= MAX_FAILS * (int(took // FAIL_TIMEOUT) + 1) * 2, len(tried_killed)  # 2 workers
    assert all(r["served_by"] != killed_addr for r in records)


def test_a_backend_answering_503_on_its_liveness_check_is_passed_over_and_counted(host):
    # Liveness depends on nothing but the process: a 5xx there is this backend's own failure.
    sick = "nginx_lb-backend-1"
    log = LogFollower()
    try:
        fault(sick, "/health/live", 503)
        began = time.time()
        codes = poll(["/health/live"], 60)
        took = time.time() - began
    finally:
        fault(sick, "/health/live", 0)
    time.sleep(1.5)
    log.poll()
    tried_sick = [r for r in log.records if r["uri"] == "/health/live" and address_of(sick) in r["tried"]]
    assert set(codes["/health/live"]) == {200}, codes  # passed to another backend every time
    assert tried_sick, "the sick backend was never tried"
    print(
        f"\n--- liveness drill: {sick} answers 503 on /health/live; 60 GETs in {took:.1f} s, "
        f"all 200; it was tried {len(tried_sick)} times"
    )
    # max_fails tries, then skipped for fail_timeout; one more try per fail_timeout that passed (~20 without counting)
    assert len(tried_sick) <= MAX_FAILS + int(took // FAIL_TIMEOUT) + 1, (len(tried_sick), took)
    time.sleep(FAIL_TIMEOUT)  # back in rotation for whatever runs next
