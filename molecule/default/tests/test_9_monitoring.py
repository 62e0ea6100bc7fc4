"""Monitoring on the converged stack: site.yml's monitoring stage with the lab's monitoring host
(tests/lab/monitoring.yml, a second inventory source: Prometheus, Alertmanager and the blackbox
exporter on the util host, the exporters on every tier host), verify.yml's measured items, and each
of the runbook's five alerts fired by a real fault and delivered to the lab's webhook receiver, then
resolved once the fault is removed:

1. PgBouncerPoolNearCapacity - more clients holding transactions through PgBouncer than its pool;
2. BackendDown - one backend's service stopped;
3. Backend5xxRateHigh - one backend cut off from PgBouncer (a blackhole route), answering 503;
4. DatabaseLatencyHigh - PostgreSQL made slow by heavy queries on a host held to a share of a core;
5. ScheduledJobRanTwice - one backend running its jobs without the lock (the sample app's test-only
   JOB_LOCK_TEST_BYPASS), beside the others that take it.

Each drill prints seconds from fault to delivered notification and from repair to the resolved one.
The lab's intervals and `for:` durations are short (tests/lab/monitoring.yml); the thresholds are the
runbook's. Runs last: the faults leave duplicate job runs in the journals, which verify.yml's lock
item would count."""

import contextlib
import json
import os
import time

import labkit
import pytest
import yaml
from stacklab import ALL_VARS, BACKENDS, GROUPS, HOSTVARS, INVENTORY, PROJECT, on, record, reports

MONITORING_INVENTORY = os.path.join(PROJECT, "tests", "lab", "monitoring.yml")
with open(MONITORING_INVENTORY, encoding="utf-8") as _fh:
    _MONITORING = yaml.safe_load(_fh)["all"]["children"]["monitoring"]
MONITOR = sorted(_MONITORING["hosts"])[0]
RECEIVED = "/var/lib/ywlab/alerts.jsonl"
RULES = "/etc/prometheus/rules/ywmessaging-alerts.yml"
PGBOUNCER = GROUPS["pgbouncer"][0]
DB = GROUPS["postgresql"][0]
# The tiers the monitoring role watches, as its defaults name them (monitoring_groups).
with open(os.path.join(PROJECT, "roles", "monitoring", "defaults", "main.yml"), encoding="utf-8") as _fh:
    _DEFAULTS = yaml.safe_load(_fh)
TIERS = _DEFAULTS["monitoring_groups"]
PORTS = _DEFAULTS["monitoring_ports"]


def mplay(playbook, *args, timeout=900):
    """A project playbook against the lab inventory plus its monitoring host."""
    return labkit.play(os.path.join(PROJECT, playbook), *args, inventory=[INVENTORY, MONITORING_INVENTORY],
                       cwd=PROJECT, timeout=timeout)  # fmt: skip


def address(host):
    return HOSTVARS[host]["lab_address"]


def notifications():
    """Every notification the lab's receiver got: (received, status, alertname, labels) per alert."""
    text = on(MONITOR, f"cat {RECEIVED} 2>/dev/null || true").stdout
    out = []
    for line in text.splitlines():
        entry = json.loads(line)
        for alert in entry["notification"]["alerts"]:
            out.append((entry["received"], alert["status"], alert["labels"].get("alertname"), alert["labels"]))
    return out


def wait_for(alertname, status, since, timeout=120, **labels):
    """Seconds from `since` until the receiver got `alertname` in `status` (firing/resolved) with these
    labels, delivered after `since`; fails the test after `timeout`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for received, got_status, name, got_labels in notifications():
            if (
                received >= since
                and name == alertname
                and got_status == status
                and all(got_labels.get(k) == v for k, v in labels.items())
            ):
                return received - since
        time.sleep(0.5)
    seen = sorted({(name, s, lab.get("host")) for r, s, name, lab in notifications() if r >= since})
    pytest.fail(f"no {status} {alertname} {labels} within {timeout} s; received since: {seen}")


def drill(alertname, fault, repair, fire_within=120, resolve_within=180, **labels):
    """Fault, wait for the firing notification, repair, wait for the resolved one; records both times."""
    started = time.time()
    try:
        fault()
        fired = wait_for(alertname, "firing", started, fire_within, **labels)
    finally:
        repaired = time.time()
        repair()
    resolved = wait_for(alertname, "resolved", repaired, resolve_within, **labels)
    record(f"alert {alertname}: fault -> notification / repair -> resolved (s)", f"{fired:.1f} / {resolved:.1f}")
    return fired, resolved


@contextlib.contextmanager
def requests_to(host, path, parallel=4):
    """GET http://<backend>:<port><path> from the monitoring host in a few loops until the block ends."""
    url = f"http://{address(host)}:{HOSTVARS[host].get('backend_node_port', 3000)}{path}"
    stop = f"/run/ywlab-requests-{host}.stop"
    loop = f"while [ ! -e {stop} ]; do curl -s -o /dev/null -m 5 {url}; sleep 0.05; done"
    on(MONITOR, f"rm -f {stop}")
    for _loop in range(parallel):
        labkit.run(["docker", "exec", "-d", HOSTVARS[MONITOR]["ansible_host"], "sh", "-c", loop])
    try:
        yield
    finally:
        on(MONITOR, f"touch {stop}")


@pytest.fixture(scope="module")
def deployed():
    run = mplay("site.yml", "--tags", "monitoring,verify")
    record("site.yml --tags monitoring,verify on the converged stack (s)", f"{run.seconds:.1f}")
    assert run.rc == 0, run.tail()
    return run


def expected_targets():
    """How many targets Prometheus should scrape, from the inventory: a node exporter per watched host,
    one tier exporter per tier host, each backend's metrics and health probe, the balancer probe,
    Prometheus and Alertmanager on each monitoring host."""
    watched = {h for group in TIERS.values() for h in GROUPS.get(group, [])} | set(_MONITORING["hosts"])
    tiers = sum(len(GROUPS.get(TIERS[t], [])) for t in ("pgbouncer", "lb", "postgresql", "redis"))
    return len(watched) + tiers + 2 * len(BACKENDS) + 1 + 2 * len(_MONITORING["hosts"])


def test_the_monitoring_stage_scrapes_every_target_and_the_report_measures_it(deployed):
    items = {item["name"]: item for item in reports()[-1]["items"]}
    item = items[f"Monitoring and alerting configured ({MONITOR})"]
    total = expected_targets()
    assert item["status"] == "pass", item
    rules = on(MONITOR, f"grep -c -- '- alert: ' {RULES}").stdout.strip()  # the rules the role wrote
    assert item["figure"].startswith(f"{total}/{total} targets up, {rules} alert rules loaded, 1 Alertmanager(s)"), item
    uptime = items[f"99.9% uptime maintained during testing period ({MONITOR})"]
    assert uptime["status"] == "pass", uptime
    assert " probes of the API through the balancer succeeded" in uptime["figure"], uptime
    record("report: monitoring", item["figure"])
    record("report: uptime", uptime["figure"])


def test_each_exporter_listens_on_the_hosts_lab_address_only(deployed):
    for host, port in [(BACKENDS[0], PORTS["node"]), (PGBOUNCER, PORTS["pgbouncer"]),
                       (GROUPS["lb"][0], PORTS["nginx"]), (DB, PORTS["postgres"])]:  # fmt: skip
        listening = on(host, f"ss -Hltn 'sport = :{port}'").stdout.split()
        assert f"{address(host)}:{port}" in listening, (host, listening)
        assert f"0.0.0.0:{port}" not in listening and f"*:{port}" not in listening, (host, listening)
    # PgBouncer's exporter reads the console with the stats user: the pool metrics are there
    metrics = on(MONITOR, f"curl -s -m 5 http://{address(PGBOUNCER)}:{PORTS['pgbouncer']}/metrics").stdout
    assert "pgbouncer_up 1.0" in metrics, metrics[-2000:]
    assert f'pgbouncer_pool_size{{database="{ALL_VARS["app_db_name"]}"}}' in metrics, metrics[-2000:]


def exporter_status(source, host, port):
    """What `source` gets from the exporter on `host`: an HTTP status, or 000 when nothing answered in 3 s."""
    url = f"http://{address(host)}:{port}/metrics"
    return on(source, f"curl -s -m 3 -o /dev/null -w '%{{http_code}}' {url}", check=False).stdout.strip()


def test_the_exporter_ports_answer_the_monitoring_host_only(deployed):
    # the lab sets monitoring_exporter_firewall: Prometheus's host gets the metrics, a backend gets no answer
    assert exporter_status(MONITOR, PGBOUNCER, PORTS["pgbouncer"]) == "200"
    assert exporter_status(BACKENDS[0], PGBOUNCER, PORTS["pgbouncer"]) == "000"
    assert exporter_status(BACKENDS[0], DB, PORTS["node"]) == "000"
    assert exporter_status(PGBOUNCER, BACKENDS[0], PORTS["node"]) == "000"
    # the host itself (over the loopback) still does
    assert exporter_status(PGBOUNCER, PGBOUNCER, PORTS["pgbouncer"]) == "200"


def test_prometheus_and_alertmanager_listen_on_the_monitoring_hosts_address_only(deployed):
    for port in (PORTS["prometheus"], PORTS["alertmanager"]):
        listening = on(MONITOR, f"ss -Hltn 'sport = :{port}'").stdout.split()
        assert f"{address(MONITOR)}:{port}" in listening, (port, listening)
        assert f"0.0.0.0:{port}" not in listening and f"*:{port}" not in listening, (port, listening)
    # one monitoring host: Alertmanager's gossip (HA mode) is off, so nothing listens on its port
    gossip = PORTS["alertmanager_cluster"]
    assert on(MONITOR, f"ss -Hln 'sport = :{gossip}'").stdout.strip() == ""


def test_check_mode_shows_a_changed_threshold_and_changes_nothing(deployed):
    before = on(MONITOR, f"sha256sum {RULES}").stdout
    run = mplay("site.yml", "--tags", "monitoring", "--check", "--diff", "-e", "monitoring_backend_5xx_ratio=0.07")
    record("site.yml --tags monitoring --check --diff, one threshold changed (s)", f"{run.seconds:.1f}")
    assert run.rc == 0 and run.changed >= 1, run.tail()
    assert "+          > 0.07" in run.output and "-          > 0.05" in run.output, run.tail()
    assert on(MONITOR, f"sha256sum {RULES}").stdout == before
    rules = json.loads(on(MONITOR, f"curl -s -m 5 http://{address(MONITOR)}:{PORTS['prometheus']}/api/v1/rules").stdout)
    loaded = [r["query"] for g in rules["data"]["groups"] for r in g["rules"] if r["name"] == "Backend5xxRateHigh"]
    assert len(loaded) == 1 and loaded[0].endswith("> 0.05"), loaded


def test_a_second_run_of_the_monitoring_stage_changes_nothing(deployed):
    run = mplay("site.yml", "--tags", "monitoring")
    record("site.yml --tags monitoring, no-op (s)", f"{run.seconds:.1f}")
    assert run.rc == 0 and run.changed == 0, run.tail()


def test_bad_monitoring_input_is_named_before_any_host_is_changed(deployed):
    bad = {
        "monitoring_listen_address": "0.0.0.0",  # noqa: S104 - the bad value under test
        "monitoring_pgbouncer_stats_password": "",
        "monitoring_backend_down_for": "soon",
        "verify_uptime_window": "an hour",
    }
    run = mplay("site.yml", "--tags", "monitoring", "-e", json.dumps(bad))
    assert run.rc != 0
    message = run.output[run.output.index("input problem(s), found before any host was changed") :]
    for expected in [
        "monitoring_listen_address must not be every address",
        "monitoring_pgbouncer_stats_password is empty",
        "monitoring_backend_down_for=soon",
        "verify_uptime_window must be a Prometheus duration",
    ]:
        assert expected in message, (expected, message[:3000])
    assert run.changed == 0, run.recap


def test_backend_down_is_delivered_within_30_seconds_and_resolves(deployed):
    backend = BACKENDS[-1]
    fired, _resolved = drill(
        "BackendDown",
        lambda: on(backend, "systemctl stop ywm-api"),
        lambda: on(backend, "systemctl start ywm-api"),
        host=backend,
    )
    assert fired <= 30, f"BackendDown took {fired:.1f} s to reach the receiver (goal: 30 s)"


def test_pool_saturation_fires_and_resolves(deployed):
    pool = PGBOUNCER
    clients = 45  # more than the lab's pool (30): every server connection busy, the rest wait
    pgbench = (
        "echo 'SELECT pg_sleep(0.5);' > /tmp/hold.sql && "
        f"PGPASSWORD='{ALL_VARS['lab_app_password']}' timeout 90 pgbench -n -c {clients} -j 2 -T 80 -f /tmp/hold.sql "
        f"-h {address(pool)} -p 6432 -U {ALL_VARS['app_db_user']} {ALL_VARS['app_db_name']} >/tmp/hold.log 2>&1"
    )
    drill(
        "PgBouncerPoolNearCapacity",
        lambda: labkit.run(["docker", "exec", "-d", HOSTVARS[DB]["ansible_host"], "sh", "-c", pgbench]),
        lambda: on(DB, "pkill -x pgbench || true"),
        host=pool,
    )


def test_backend_5xx_rate_fires_and_resolves(deployed):
    backend = BACKENDS[1]
    route = f"blackhole {address(PGBOUNCER)}/32"
    with requests_to(backend, "/health/detailed"):
        drill(
            "Backend5xxRateHigh",
            lambda: on(backend, f"ip route add {route}"),
            lambda: on(backend, f"ip route del {route} || true"),
            host=backend,
        )


# A primary saturated by heavy queries: two sessions counting through a huge series on a host held to
# a twentieth of a core (the kernel here has no netem for a network delay). The app's queries then
# take a few hundred ms - above the runbook's 100 ms, below its 2 s health timeout.
SLOW_DB_CPUS = 0.05
BURNER = "PGAPPNAME=ywlab-burner psql -Xqc 'SELECT count(*) FROM generate_series(1, 100000000000)'"
CANCEL_BURNERS = "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'ywlab-burner'"


def slow_database():
    db = HOSTVARS[DB]["ansible_host"]
    labkit.run(["docker", "update", "--cpus", str(SLOW_DB_CPUS), db])
    for _burner in range(2):
        labkit.run(["docker", "exec", "-d", db, "su", "postgres", "-c", BURNER])


def database_back():
    on(DB, ["su", "postgres", "-c", f'psql -Xqtc "{CANCEL_BURNERS}"'], check=False)
    labkit.run(["docker", "update", "--cpus", str(os.cpu_count() or 1), HOSTVARS[DB]["ansible_host"]])


def test_database_latency_fires_and_resolves(deployed):
    with contextlib.ExitStack() as stack:
        for backend in BACKENDS:
            stack.enter_context(requests_to(backend, "/health/detailed", parallel=2))
        drill("DatabaseLatencyHigh", slow_database, database_back)


def test_a_job_run_on_two_backends_fires_and_resolves(deployed):
    backend = BACKENDS[0]
    dropin = "/etc/systemd/system/ywm-api.service.d/zz-ywlab-lock-bypass.conf"
    bypass = "[Service]\\nEnvironment=JOB_LOCK_TEST_BYPASS=true\\n"
    drill(
        "ScheduledJobRanTwice",
        lambda: on(
            backend,
            f"mkdir -p {os.path.dirname(dropin)} && printf '{bypass}' > {dropin}"
            " && systemctl daemon-reload && systemctl restart ywm-api",
        ),
        lambda: on(backend, f"rm -f {dropin} && systemctl daemon-reload && systemctl restart ywm-api"),
    )


def test_the_exporter_firewall_turned_off_is_removed(deployed):
    # last: it leaves PgBouncer's host without the firewall
    run = mplay("site.yml", "--tags", "monitoring", "--limit", PGBOUNCER, "-e", "monitoring_exporter_firewall=false")
    assert run.rc == 0 and run.changed > 0, run.tail()
    assert "ywmessaging_exporters" not in on(PGBOUNCER, "nft list tables").stdout
    assert exporter_status(BACKENDS[0], PGBOUNCER, PORTS["pgbouncer"]) == "200"
