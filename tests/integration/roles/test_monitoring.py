"""The monitoring role's files, rendered by the role's own tasks (tasks_from: config, paths pointed
at a scratch directory) for the example inventory inventories/production, then held to Prometheus's
own tools: `promtool check config` / `check rules`, `amtool check-config`, and `promtool test rules`
with a firing and a quiet case on either side of every alert's threshold.

Needs promtool and amtool (Debian: prometheus, prometheus-alertmanager); without them the tests
fail, they never skip."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PRODUCTION = os.path.join(ROOT, "inventories", "production")
STAGING = os.path.join(ROOT, "inventories", "staging")
# The role runs here, on this machine standing in for the examples' hosts: the addresses it checks a
# listen address against are theirs (the role reads them from the host's facts; -e wins over that).
STAND_IN = json.dumps({"__monitoring_host_addresses": ["10.0.1.50", "10.0.2.50", "fd00::51", "10.0.1.20", "10.0.0.1"]})

PLAYBOOK = """
- hosts: monitoring
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: ywmessaging.scaling.monitoring
        tasks_from: validate
    - ansible.builtin.include_role:
        name: ywmessaging.scaling.monitoring
        tasks_from: config
"""


def tool(name, package):
    path = shutil.which(name)
    assert path, f"{name} is missing: install the Debian package {package} (apt-get install -y {package})"
    return path


def run_role(tmp_path, *extra, example=PRODUCTION):
    """The role's validate + config entry points on the example's monitoring host, locally; the files
    land in tmp_path/out. Returns the finished process (stdout + stderr in .output)."""
    tool("promtool", "prometheus")  # the role's own `validate:` steps call them
    tool("amtool", "prometheus-alertmanager")
    out = tmp_path / "out"
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    # the example's monitoring host listens at its ansible_host, not at this machine's default address
    listen = tmp_path / "listen.yml"
    with open(os.path.join(example, "hosts.yml"), encoding="utf-8") as fh:
        address = yaml.safe_load(fh)["all"]["children"]["monitoring"]["hosts"]["monitoring-1"]["ansible_host"]
    listen.write_text(json.dumps({"all": {"hosts": {"monitoring-1": {"monitoring_listen_address": address}}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    argv = [
        os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(tmp_path / "play.yml"),
        "-i", example, "-e", "ansible_connection=local", "-e", f"ansible_python_interpreter={sys.executable}",
        "-i", str(listen), "-e", "__monitoring_reload=false", "-e", STAND_IN,
        "-e", f"__monitoring_rules_dir={out}/rules",
        "-e", f"__monitoring_prometheus_config={out}/prometheus.yml",
        "-e", f"__monitoring_alertmanager_config={out}/alertmanager.yml",
        "-e", f"__monitoring_blackbox_config={out}/blackbox.yml",
        "-e", f"__monitoring_blackbox_defaults={out}/blackbox.env",
        "-e", f"__monitoring_prometheus_defaults={out}/prometheus.env",
        "-e", f"__monitoring_alertmanager_defaults={out}/alertmanager.env",
        *extra,
    ]  # fmt: skip
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    proc.output = proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("monitoring")
    proc = run_role(tmp_path)
    assert proc.returncode == 0 and recap_changed(proc.output) == [8], proc.output[-3000:]  # rules dir, 7 files
    return tmp_path / "out"


def check(*argv):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout + proc.stderr


def test_the_examples_files_pass_promtool_and_amtool(rendered):
    out = check(tool("promtool", "prometheus"), "check", "config", str(rendered / "prometheus.yml"))
    assert "SUCCESS: 13 rules found" in out, out  # check config also read the rule file it names
    check(tool("promtool", "prometheus"), "check", "rules", str(rendered / "rules" / "ywmessaging-alerts.yml"))
    out = check(tool("amtool", "prometheus-alertmanager"), "check-config", str(rendered / "alertmanager.yml"))
    assert " - 1 receivers" in out, out
    # the probes' module, and the blackbox exporter on the monitoring host's loopback only
    check(tool("prometheus-blackbox-exporter", "prometheus-blackbox-exporter"), "--config.check",
          f"--config.file={rendered / 'blackbox.yml'}")  # fmt: skip
    assert "--web.listen-address=127.0.0.1:9115" in (rendered / "blackbox.env").read_text()
    # Prometheus and Alertmanager on the monitoring host's address only; one monitoring host: no gossip
    assert 'ARGS="--web.listen-address=10.0.1.50:9090"' in (rendered / "prometheus.env").read_text()
    alertmanager = (rendered / "alertmanager.env").read_text()
    assert 'ARGS="--web.listen-address=10.0.1.50:9093 --cluster.listen-address="' in alertmanager


def test_the_staging_examples_files_pass_promtool_and_amtool(tmp_path):
    proc = run_role(tmp_path, example=STAGING)
    assert proc.returncode == 0, proc.output[-3000:]
    out = tmp_path / "out"
    checked = check(tool("promtool", "prometheus"), "check", "config", str(out / "prometheus.yml"))
    assert "SUCCESS: 13 rules found" in checked, checked
    check(tool("amtool", "prometheus-alertmanager"), "check-config", str(out / "alertmanager.yml"))
    assert yaml.safe_load((out / "prometheus.yml").read_text())["global"]["external_labels"] == {
        "environment": "staging"
    }
    assert 'ARGS="--web.listen-address=10.0.2.50:9090"' in (out / "prometheus.env").read_text()


def test_several_monitoring_hosts_gossip_with_each_other_only(tmp_path):
    second = tmp_path / "second.yml"
    second.write_text(json.dumps({"all": {"children": {"monitoring": {"hosts": {
        "monitoring-2": {"monitoring_address": "fd00::51", "monitoring_ports": {
            "node": 9100, "pgbouncer": 9127, "nginx": 9113, "blackbox": 9115, "postgres": 9187, "redis": 9121,
            "prometheus": 9090, "alertmanager": 9093, "alertmanager_cluster": 9500}}}}}}}))  # fmt: skip
    proc = run_role(tmp_path, "-i", str(second), "--limit", "monitoring-1")
    assert proc.returncode == 0, proc.output[-3000:]
    args = (tmp_path / "out" / "alertmanager.env").read_text()
    # its own gossip port (monitoring-1 keeps the default), the peer's from the peer's own variables
    assert 'ARGS="--web.listen-address=10.0.1.50:9093 --cluster.listen-address=10.0.1.50:9094 ' in args, args
    assert '--cluster.peer=[fd00::51]:9500"' in args, args
    config = yaml.safe_load((tmp_path / "out" / "prometheus.yml").read_text())
    targets = config["alerting"]["alertmanagers"][0]["static_configs"]
    assert [group["targets"] for group in targets] == [["10.0.1.50:9093"], ["[fd00::51]:9093"]]


def test_the_examples_targets_come_from_its_groups(rendered):
    def targets(job):
        config = yaml.safe_load((rendered / "prometheus.yml").read_text())
        groups = {scrape["job_name"]: scrape["static_configs"] for scrape in config["scrape_configs"]}[job]
        return [(group["targets"][0], group["labels"]["host"]) for group in groups]

    assert targets("backend_health") == [
        ("http://10.0.1.31:3000/health", "backend-1"),
        ("http://10.0.1.32:3000/health", "backend-2"),
        ("http://10.0.1.33:3000/health", "backend-3"),
    ]
    assert targets("balancer_https") == [("https://api.example.com/health", "api.example.com")]
    assert targets("pgbouncer") == [("10.0.1.20:9127", "pgbouncer-1")]
    assert targets("nginx") == [("10.0.1.40:9113", "lb-1")]
    assert targets("alertmanager") == [("10.0.1.50:9093", "monitoring-1")]
    assert [host for _target, host in targets("node")] == [
        "pgbouncer-1", "backend-1", "backend-2", "backend-3", "lb-1", "monitoring-1"]  # fmt: skip
    assert targets("postgres") == [] and targets("redis") == []  # the example does not list them
    config = yaml.safe_load((rendered / "prometheus.yml").read_text())
    assert config["global"]["external_labels"] == {"environment": "production"}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["backend_health"]["relabel_configs"][-1]["replacement"] == "127.0.0.1:9115"
    assert jobs["backend"]["metrics_path"] == "/metrics"


def recap_changed(output):
    return [int(n) for n in re.findall(r"^monitoring-1\s*:.*\bchanged=(\d+)", output, re.M)]


def test_a_second_run_and_a_check_run_change_nothing(rendered):
    again = run_role(rendered.parent)  # the fixture's first run wrote everything
    assert again.returncode == 0 and recap_changed(again.output) == [0], again.output[-3000:]
    checked = run_role(rendered.parent, "--check", "--diff")
    assert checked.returncode == 0 and recap_changed(checked.output) == [0], checked.output[-3000:]


def test_check_mode_on_a_new_host_writes_nothing(tmp_path):
    proc = run_role(tmp_path, "--check")
    assert proc.returncode == 0, proc.output[-3000:]
    assert not (tmp_path / "out").exists()


def test_the_blackbox_exporter_has_its_module_before_prometheus_sends_probes_to_it():
    """Handlers run in the order of the handlers file. Prometheus, reloaded or restarted with new probe
    jobs, probes at once; if the blackbox exporter still ran Debian's stock configuration (whose
    `http_2xx` module does not trust the probes' CA), the first probes would fail and count as
    downtime in verify.yml's uptime item (a fresh deploy's window holds a few probes only)."""
    with open(os.path.join(ROOT, "roles", "monitoring", "handlers", "main.yml"), encoding="utf-8") as fh:
        handlers = yaml.safe_load(fh)
    order = [h["listen"] for h in handlers]
    blackbox = order.index("monitoring blackbox changed")
    prometheus = [i for i, topic in enumerate(order) if topic.startswith("monitoring prometheus")]
    assert prometheus and all(blackbox < i for i in prometheus), order


# ---------------------------------------------------------------------------------------------
# promtool test rules: every alert, firing and quiet, at its default threshold
# ---------------------------------------------------------------------------------------------

PGB = 'job="pgbouncer",instance="10.0.1.20:9127",host="pgbouncer-1"'
PGB2 = 'job="pgbouncer",instance="10.0.1.21:9127",host="pgbouncer-2"'
B1 = 'job="backend",instance="10.0.1.31:3000",host="backend-1"'
B2 = 'job="backend",instance="10.0.1.32:3000",host="backend-2"'
H1 = 'job="backend_health",instance="http://10.0.1.31:3000/health",host="backend-1"'
H2 = 'job="backend_health",instance="http://10.0.1.32:3000/health",host="backend-2"'
LB = 'job="balancer_https",instance="https://api.example.com/health",host="api.example.com"'
PG = 'job="postgres",instance="10.0.1.10:9187",host="db-1"'
PG2 = 'job="postgres",instance="10.0.1.11:9187",host="db-2"'
REDIS = 'job="redis",instance="10.0.1.15:9121",host="redis-1"'
REDIS2 = 'job="redis",instance="10.0.1.16:9121",host="redis-2"'
NODE = 'job="node",instance="10.0.1.31:9100",host="backend-1",device="/dev/sda1",fstype="ext4"'


def series(name, labels, values):
    return {"series": "%s{%s}" % (name, labels), "values": values}


def labels_of(text):
    return dict(pair.split("=", 1) for pair in text.split(",")) if text else {}


# Each case: the input series, and when each alert is expected - [] means "quiet at that time".
# An expected alert names its labels and the values its annotations must show.
CASES = {
    "PgBouncerPoolNearCapacity": {
        "interval": "1m",
        "input": [
            # 24 of 30 server connections of database app busy, over two users' pools: exactly 80 %
            series("pgbouncer_active_servers", PGB + ',database="app",user="app"', "20x10"),
            series("pgbouncer_active_servers", PGB + ',database="app",user="report"', "4x10"),
            series("pgbouncer_pool_size", PGB + ',database="app"', "30x10"),
            # the admin console's own pool is not counted, however full
            series("pgbouncer_active_servers", PGB + ',database="pgbouncer",user="pgbouncer"', "2x10"),
            series("pgbouncer_pool_size", PGB + ',database="pgbouncer"', "2x10"),
            # 23 of 30: below
            series("pgbouncer_active_servers", PGB2 + ',database="app",user="app"', "23x10"),
            series("pgbouncer_pool_size", PGB2 + ',database="app"', "30x10"),
        ],
        "expect": [
            ("1m", []),  # pending: not yet 2m
            ("3m", [(PGB + ',database="app"', {"$value | humanizePercentage": "80%"})]),
        ],
    },
    "BackendDown": {
        "interval": "10s",
        "input": [series("probe_success", H1, "1 1 0 0 0 0 0 0"), series("probe_success", H2, "1x7")],
        "expect": [("30s", []), ("50s", [(H1, {})])],
    },
    "Backend5xxRateHigh": {
        "interval": "1m",
        "input": [
            # 6 % of backend-1's responses are 5xx; 4.9 % of backend-2's
            series("http_requests_total", B1 + ',status="200"', "0+94x10"),
            series("http_requests_total", B1 + ',status="503"', "0+6x10"),
            series("http_requests_total", B2 + ',status="200"', "0+951x10"),
            series("http_requests_total", B2 + ',status="500"', "0+49x10"),
        ],
        "expect": [("2m", []), ("5m", [(B1, {"$value | humanizePercentage": "6%"})])],
    },
    "DatabaseLatencyHigh": {
        "interval": "1m",
        "input": [
            # backend-1: 90 of 100 queries within 100 ms, p95 = 175 ms; backend-2: 96 of 100, p95 = 97 ms
            series("db_query_duration_seconds_bucket", B1 + ',le="0.05"', "0+80x10"),
            series("db_query_duration_seconds_bucket", B1 + ',le="0.1"', "0+90x10"),
            series("db_query_duration_seconds_bucket", B1 + ',le="0.25"', "0+100x10"),
            series("db_query_duration_seconds_bucket", B1 + ',le="+Inf"', "0+100x10"),
            series("db_query_duration_seconds_bucket", B2 + ',le="0.05"', "0+80x10"),
            series("db_query_duration_seconds_bucket", B2 + ',le="0.1"', "0+96x10"),
            series("db_query_duration_seconds_bucket", B2 + ',le="0.25"', "0+100x10"),
            series("db_query_duration_seconds_bucket", B2 + ',le="+Inf"', "0+100x10"),
        ],
        "expect": [("2m", []), ("5m", [(B1, {"$value | humanizeDuration": "175ms"})])],
    },
    "ScheduledJobRanTwice": {
        "interval": "1m",
        "input": [
            # both backends executed run 1700000000 of recurring-messages; phone-recovery ran once per slot
            series("job_last_run_slot_seconds", B1 + ',job_name="recurring-messages"', "1700000000x5"),
            series("job_last_run_slot_seconds", B2 + ',job_name="recurring-messages"', "1699999940 1700000000x4"),
            series("job_last_run_slot_seconds", B1 + ',job_name="phone-recovery"', "1700000000x5"),
            series("job_last_run_slot_seconds", B2 + ',job_name="phone-recovery"', "1700000060x5"),
        ],
        "expect": [
            ("0m", []),
            ("1m", [('job_name="recurring-messages",run="1700000000"', {"$value": "2"})]),
        ],
    },
    "BalancerHttpsDown": {
        "interval": "30s",
        "input": [series("probe_success", LB, "1 1 1 0 0 0 0 0 0")],
        "expect": [("1m", []), ("2m", []), ("3m", [(LB, {})])],
    },
    "CertificateExpiringSoon": {
        "interval": "1m",
        "input": [
            # promtool's clock starts at 0: 13 days left fires (below 14), 15 days left does not
            series("probe_ssl_earliest_cert_expiry", LB, "1123200x30"),
            series(
                "probe_ssl_earliest_cert_expiry",
                'job="balancer_https",instance="https://www.example.com/health",host="www.example.com"',
                "1296000x30",
            ),
        ],
        "expect": [("10m", []), ("20m", [(LB, {'$value | printf "%.1f"': "13.0"})])],
    },
    "TargetDown": {
        "interval": "30s",
        "input": [series("up", PGB, "1 0 0 0 0 0"), series("up", NODE.split(",device", maxsplit=1)[0], "1x5")],
        "expect": [("1m", []), ("2m", [(PGB, {})])],
    },
    "PostgresDown": {
        "interval": "30s",
        "input": [series("pg_up", PG, "1 0 0 0 0 0"), series("pg_up", PG2, "1 1 0 1 1 1")],
        "expect": [("30s", []), ("1m", []), ("1m30s", [(PG, {})])],
    },
    "RedisDown": {
        "interval": "30s",
        "input": [series("redis_up", REDIS, "1 0 0 0 0 0"), series("redis_up", REDIS2, "1 1 0 1 1 1")],
        "expect": [("30s", []), ("1m", []), ("1m30s", [(REDIS, {})])],
    },
    "PgBouncerClientsWaiting": {
        "interval": "30s",
        "input": [
            series("pgbouncer_waiting_clients", PGB + ',database="app",user="app"', "3x6"),
            series("pgbouncer_waiting_clients", PGB + ',database="other",user="app"', "0x6"),
            series("pgbouncer_waiting_clients", PGB2 + ',database="app",user="app"', "0x6"),
        ],
        "expect": [("30s", []), ("2m", [(PGB, {"$value": "3"})])],
    },
    "DiskAlmostFull": {
        "interval": "1m",
        "input": [
            # / has 9 % free; /var exactly 10 % (not below); a tmpfs at 1 % is not a disk
            series("node_filesystem_avail_bytes", NODE + ',mountpoint="/"', "9x10"),
            series("node_filesystem_size_bytes", NODE + ',mountpoint="/"', "100x10"),
            series("node_filesystem_readonly", NODE + ',mountpoint="/"', "0x10"),
            series("node_filesystem_avail_bytes", NODE + ',mountpoint="/var"', "10x10"),
            series("node_filesystem_size_bytes", NODE + ',mountpoint="/var"', "100x10"),
            series("node_filesystem_readonly", NODE + ',mountpoint="/var"', "0x10"),
            series("node_filesystem_avail_bytes", NODE.replace("ext4", "tmpfs") + ',mountpoint="/run"', "1x10"),
            series("node_filesystem_size_bytes", NODE.replace("ext4", "tmpfs") + ',mountpoint="/run"', "100x10"),
            series("node_filesystem_readonly", NODE.replace("ext4", "tmpfs") + ',mountpoint="/run"', "0x10"),
        ],
        "expect": [("3m", []), ("6m", [(NODE + ',mountpoint="/"', {"$value | humanizePercentage": "9%"})])],
    },
    "DiskFillingUp": {
        "interval": "1m",
        "input": [
            # /: 39 % free, losing 3 %/h (full within 24 h); /srv: 39 % free, steady; /data: 60 % free, falling
            series("node_filesystem_avail_bytes", NODE + ',mountpoint="/"', "39-0.05x180"),
            series("node_filesystem_size_bytes", NODE + ',mountpoint="/"', "100x180"),
            series("node_filesystem_readonly", NODE + ',mountpoint="/"', "0x180"),
            series("node_filesystem_avail_bytes", NODE + ',mountpoint="/srv"', "39x180"),
            series("node_filesystem_size_bytes", NODE + ',mountpoint="/srv"', "100x180"),
            series("node_filesystem_readonly", NODE + ',mountpoint="/srv"', "0x180"),
            series("node_filesystem_avail_bytes", NODE + ',mountpoint="/data"', "60-0.05x180"),
            series("node_filesystem_size_bytes", NODE + ',mountpoint="/data"', "100x180"),
            series("node_filesystem_readonly", NODE + ',mountpoint="/data"', "0x180"),
        ],
        "expect": [("20m", []), ("2h", [(NODE + ',mountpoint="/"', {})])],
    },
}


def rules_by_name(rules_file):
    groups = yaml.safe_load(rules_file.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def expected_alert(rule, labels, values):
    """The alert promtool must report: the rule's labels plus the series', and its annotations with
    every Prometheus template expression replaced by the value the test expects it to show."""
    labels = {k: v.strip('"') for k, v in labels_of(labels).items()}
    annotations = {}
    for key, text in rule["annotations"].items():
        text = text.replace("{{ $labels.%s }}" % "instance", labels.get("instance", ""))
        for name, value in labels.items():
            text = text.replace("{{ $labels.%s }}" % name, value)
        for expression, shown in values.items():
            text = text.replace("{{ %s }}" % expression, shown)
        assert "{{" not in text, f"{rule['alert']}: the test gives no value for {text}"
        annotations[key] = text
    return {"exp_labels": dict(rule["labels"], **labels), "exp_annotations": annotations}


def test_every_alert_fires_and_stays_quiet_on_either_side_of_its_threshold(rendered, tmp_path):
    rules_file = rendered / "rules" / "ywmessaging-alerts.yml"
    rules = rules_by_name(rules_file)
    assert sorted(rules) == sorted(CASES), "every alert needs its promtool test"
    tests = []
    for alert, case in CASES.items():
        checks = []
        for eval_time, alerts in case["expect"]:
            exp = [expected_alert(rules[alert], labels, values) for labels, values in alerts]
            checks.append({"eval_time": eval_time, "alertname": alert, "exp_alerts": exp})
        tests.append({"name": alert, "interval": case["interval"], "input_series": case["input"],
                      "alert_rule_test": checks})  # fmt: skip
        # every case proves both sides: a time or a series where the alert is quiet, and one where it fires
        quiet_and_firing = [bool(alerts) for _at, alerts in case["expect"]]
        assert False in quiet_and_firing and True in quiet_and_firing, alert
    test_file = tmp_path / "alerts_test.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": [str(rules_file)], "evaluation_interval": "10s", "tests": tests},
                                        sort_keys=False))  # fmt: skip
    out = check(tool("promtool", "prometheus"), "test", "rules", str(test_file))
    assert "SUCCESS" in out, out


def test_every_threshold_and_duration_variable_reaches_its_rule(tmp_path):
    changed = {
        "monitoring_pgbouncer_pool_ratio": 0.9, "monitoring_pgbouncer_pool_capacity": 45,
        "monitoring_pgbouncer_pool_for": "3m", "monitoring_backend_down_for": "15s",
        "monitoring_backend_5xx_ratio": 0.02, "monitoring_backend_5xx_window": "5m", "monitoring_backend_5xx_for": "4m",
        "monitoring_db_latency_seconds": 0.25, "monitoring_db_latency_quantile": 0.99,
        "monitoring_db_latency_window": "10m", "monitoring_db_latency_for": "6m",
        "monitoring_lock_duplicate_for": "30s",
        "monitoring_balancer_down_for": "2m", "monitoring_cert_min_days": 7, "monitoring_target_down_for": "3m",
        "monitoring_datastore_down_for": "45s",
        "monitoring_pgbouncer_waiting_clients": 5, "monitoring_pgbouncer_waiting_for": "2m",
        "monitoring_disk_free_ratio": 0.05, "monitoring_disk_fill_hours": 12, "monitoring_disk_for": "10m",
        "monitoring_runbook_url": "https://wiki.example.com/phase2",
    }  # fmt: skip
    (tmp_path / "vars.json").write_text(json.dumps(changed))
    proc = run_role(tmp_path, "-e", f"@{tmp_path / 'vars.json'}")
    assert proc.returncode == 0, proc.output[-3000:]
    rules = rules_by_name(tmp_path / "out" / "rules" / "ywmessaging-alerts.yml")
    expected = {
        "PgBouncerPoolNearCapacity": (["/ 45", ">= 0.9"], "3m"),
        "BackendDown": ([], "15s"),
        "Backend5xxRateHigh": (["[5m]", "> 0.02"], "4m"),
        "DatabaseLatencyHigh": (["histogram_quantile(0.99,", "[10m]", "> 0.25"], "6m"),
        "ScheduledJobRanTwice": ([], "30s"),
        "BalancerHttpsDown": ([], "2m"),
        "CertificateExpiringSoon": (["< 7"], "15m"),
        "TargetDown": ([], "3m"),
        "PostgresDown": ([], "45s"),
        "RedisDown": ([], "45s"),
        "PgBouncerClientsWaiting": (["> 5"], "2m"),
        "DiskAlmostFull": (["< 0.05"], "10m"),
        "DiskFillingUp": (["12 * 3600"], "30m"),
    }
    assert sorted(expected) == sorted(rules)
    for alert, (fragments, duration) in expected.items():
        expr = " ".join(rules[alert]["expr"].split())
        assert [f for f in fragments if f not in expr] == [] and rules[alert]["for"] == duration, (alert, expr)
        assert rules[alert]["annotations"]["runbook_url"].startswith("https://wiki.example.com/phase2#"), alert
    assert "pgbouncer_pool_size" not in rules["PgBouncerPoolNearCapacity"]["expr"]  # the explicit capacity replaces it


# ---------------------------------------------------------------------------------------------
# secrets and bad input
# ---------------------------------------------------------------------------------------------

SECRETS = {
    "slack": "https://hooks.slack.example/services/T000/B000/SeCrEtSlAcKtOkEn",
    "pagerduty": "0123456789abcdef0123456789abcdef",
    "smtp": "smtp-pa$$word-SeCrEt",
    "webhook": "https://hooks.example.net/alert?token=SeCrEtWeBhOoK",
}
CRITICAL = 'severity="critical"'


def test_secrets_reach_the_file_and_never_the_output(tmp_path):
    values = {
        "monitoring_alertmanager_receivers": [
            {"name": "oncall", "email_to": ["ops@example.com"], "slack_api_url": SECRETS["slack"],
             "slack_channel": "#ops", "webhook_urls": [SECRETS["webhook"]]},
            {"name": "pager", "pagerduty_routing_key": SECRETS["pagerduty"], "send_resolved": False},
        ],
        "monitoring_alertmanager_routes": [{"receiver": "pager", "matchers": [CRITICAL], "continue": True}],
        "monitoring_alertmanager_smtp_auth_username": "alertmanager",
        "monitoring_alertmanager_smtp_auth_password": SECRETS["smtp"],
    }  # fmt: skip
    (tmp_path / "vars.json").write_text(json.dumps(values))
    proc = run_role(tmp_path, "-e", f"@{tmp_path / 'vars.json'}", "--diff", "-vv")
    assert proc.returncode == 0, proc.output[-3000:]
    assert not [name for name, secret in SECRETS.items() if secret in proc.output], proc.output[-3000:]
    path = tmp_path / "out" / "alertmanager.yml"
    config = yaml.safe_load(path.read_text())
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    receivers = {r["name"]: r for r in config["receivers"]}
    slack = [{"api_url": SECRETS["slack"], "send_resolved": True, "channel": "#ops"}]
    assert receivers["oncall"]["slack_configs"] == slack
    assert receivers["oncall"]["webhook_configs"] == [{"url": SECRETS["webhook"], "send_resolved": True}]
    assert receivers["pager"]["pagerduty_configs"] == [{"routing_key": SECRETS["pagerduty"], "send_resolved": False}]
    assert config["global"]["smtp_auth_password"] == SECRETS["smtp"]
    assert config["route"]["receiver"] == "oncall"
    assert config["route"]["routes"] == [{"receiver": "pager", "matchers": [CRITICAL], "continue": True}]
    check(tool("amtool", "prometheus-alertmanager"), "check-config", str(path))


def test_bad_values_are_named_in_one_message_and_nothing_is_written(tmp_path):
    bad = {
        "monitoring_pgbouncer_pool_ratio": 1.5,
        "monitoring_backend_down_for": "20 seconds",
        "monitoring_balancer_probe_urls": ["http://api.example.com/health"],
        "monitoring_alertmanager_receivers": [
            {"name": "oncall", "email_to": ["not-an-address"]},
            {"name": "quiet"},
            {"name": "pager", "pagerduty_routing_key": "short-" + SECRETS["smtp"]},
        ],
        "monitoring_alertmanager_routes": [{"receiver": "nobody", "matchers": ["severity=critical"]}],
        "monitoring_alertmanager_group_by": ["alertname", "alertname"],
        "monitoring_listen_address": "::",  # Prometheus and Alertmanager never on every address
        "monitoring_datastore_down_for": "1 minute",
    }
    (tmp_path / "vars.json").write_text(json.dumps(bad))
    proc = run_role(tmp_path, "-e", f"@{tmp_path / 'vars.json'}")
    assert proc.returncode != 0
    message = proc.output[proc.output.index("monitoring role: ") :]
    for expected in ["monitoring_pgbouncer_pool_ratio", "monitoring_backend_down_for=20 seconds",
                     "monitoring_balancer_probe_urls", "not-an-address", "['quiet']", "pagerduty_routing_key",
                     "['nobody']", "severity=critical",
                     "monitoring_alertmanager_group_by", "monitoring_listen_address must not be every address (::)",
                     "monitoring_datastore_down_for=1 minute"]:  # fmt: skip
        assert expected in message, (expected, message)
    assert SECRETS["smtp"] not in proc.output
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# The exporters' input (entry point validate_exporters), on the example's PgBouncer host
# ---------------------------------------------------------------------------------------------

EXPORTERS_PLAYBOOK = """
- hosts: pgbouncer-1
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: ywmessaging.scaling.monitoring
        tasks_from: validate_exporters
"""


def validate_exporters(tmp_path, values):
    (tmp_path / "play.yml").write_text(EXPORTERS_PLAYBOOK)
    (tmp_path / "vars.json").write_text(json.dumps(values))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    argv = [
        os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(tmp_path / "play.yml"),
        "-i", PRODUCTION, "-e", "ansible_connection=local", "-e", f"ansible_python_interpreter={sys.executable}",
        "-e", STAND_IN, "-e", f"@{tmp_path / 'vars.json'}",
    ]  # fmt: skip
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_exporters_input_of_the_example_passes_and_bad_values_are_named_in_one_message(tmp_path):
    good = {"monitoring_address": "10.0.1.20", "monitoring_pgbouncer_stats_password": "stats-" + SECRETS["smtp"]}
    rc, output = validate_exporters(tmp_path, good)
    assert rc == 0, output[-3000:]
    bad = {
        "monitoring_listen_address": "0.0.0.0",  # noqa: S104 - the bad value under test
        "monitoring_pgbouncer_stats_password": "",
        "monitoring_pgbouncer_console_port": 70000,
        "monitoring_nginx_status_url": "http://10.0.1.40:8080/nginx_status",
        "monitoring_redis_url": "10.0.1.60:6379",
    }
    rc, output = validate_exporters(tmp_path, bad)
    assert rc != 0
    message = output[output.index("monitoring role (exporters): ") :]
    for expected in ["monitoring_listen_address must not be every address (0.0.0.0)",
                     "monitoring_pgbouncer_stats_password is empty", "monitoring_pgbouncer_console_port must be a port",
                     "monitoring_nginx_status_url must be an http:// URL on the loopback",
                     "monitoring_redis_url must be redis://host:port"]:  # fmt: skip
        assert expected in message, (expected, message)
    rc, output = validate_exporters(tmp_path, dict(good, monitoring_address="monitoring.example.com"))
    assert rc != 0 and "must be an IP address of this host, got 'monitoring.example.com'" in output, output[-2000:]
    # an address the host does not have: nothing could listen on it
    rc, output = validate_exporters(tmp_path, dict(good, monitoring_listen_address="10.9.9.9"))
    assert rc != 0 and "10.9.9.9 is not an address of " in output and "set monitoring_listen_address" in output, output[
        -2000:
    ]
    # the exporter firewall lets the monitoring host in: the example gives its address (ansible_host)
    rc, output = validate_exporters(tmp_path, dict(good, monitoring_exporter_firewall=True))
    assert rc == 0, output[-3000:]
    rc, output = validate_exporters(
        tmp_path,
        dict(
            good, monitoring_exporter_firewall=True, monitoring_scrape_sources=["10.0.1.0/24", "prometheus.example.com"]
        ),
    )
    assert rc != 0 and "lets IP addresses or networks (CIDR) in, not ['prometheus.example.com']" in output, output[
        -2000:
    ]
    # a tab or a line break in a secret: systemd's environment files have no escape for them
    secret = "stats-" + SECRETS["smtp"]
    rc, output = validate_exporters(tmp_path, dict(good, monitoring_pgbouncer_stats_password=secret + "\t1",
                                                   monitoring_redis_password=secret + "\n2"))  # fmt: skip
    assert rc != 0
    for name in ("monitoring_pgbouncer_stats_password", "monitoring_redis_password"):
        assert f"{name} must not hold control characters" in output, output[-2000:]
    assert SECRETS["smtp"] not in output


def test_a_redis_password_with_quotes_backslashes_and_non_ascii_reaches_the_environment_file_as_systemd_reads_it(
    tmp_path,
):
    (tmp_path / "play.yml").write_text(
        """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {name: ywmessaging.scaling.monitoring, tasks_from: validate_exporters, public: true}
    - ansible.builtin.copy: {dest: "{{ out }}", content: "{{ __monitoring_exporter_defaults.redis }}"}
"""
    )
    values = {
        "monitoring_redis_password": 'a"b\\c \u00e9 $x',
        "monitoring_address": "10.0.0.1",
        "out": str(tmp_path / "redis.env"),
    }
    (tmp_path / "vars.json").write_text(json.dumps(values))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    argv = [
        os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(tmp_path / "play.yml"),
        "-e", "ansible_connection=local", "-e", f"ansible_python_interpreter={sys.executable}",
        "-e", STAND_IN, "-e", f"@{tmp_path / 'vars.json'}", "-e", '{"group_names": ["redis"]}',
    ]  # fmt: skip
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    # double-quoted, " and \ escaped with a backslash, everything else as it is (systemd has no \uXXXX)
    assert 'REDIS_PASSWORD="a\\"b\\\\c \u00e9 $x"' in (tmp_path / "redis.env").read_text(encoding="utf-8")
