"""Each backend after converge: the runbook's health check verification and smoke test run directly on
the backend, and the service is deployed the way the role promises (release layout, unprivileged
user, root-only environment file, sandboxed unit)."""

import re

import labkit
import pytest
from backend_lab import (
    BASE,
    ENV_FILE,
    SERVICE,
    USER,
    http,
    tag_commit,
)

testinfra_hosts = ["backend_node-bookworm", "backend_node-trixie"]
NODE_MAJOR = {"bookworm": 18, "trixie": 20}


@pytest.fixture
def name(host):
    return host.backend.get_hostname()


def test_node_comes_from_the_distribution(host):
    assert host.package("nodejs").is_installed
    assert host.package("npm").is_installed
    major = int(host.check_output("node --version").lstrip("v").split(".")[0])
    assert major == NODE_MAJOR[host.system_info.codename]


def test_current_points_at_the_v1_0_0_release_with_its_revision(host):
    commit = tag_commit("v1.0.0")
    current = host.file(f"{BASE}/current")
    assert current.is_symlink
    assert current.linked_to == f"{BASE}/releases/{commit[:12]}"
    assert host.file(f"{BASE}/current/REVISION").content_string.strip() == commit
    assert host.file(f"{BASE}/current/.ywm-release.json").exists
    assert host.file(f"{BASE}/current/dist/src/server.js").exists


def test_release_files_belong_to_the_service_user_and_config_to_root(host):
    release = host.file(f"{BASE}/current/")
    assert release.user == USER
    assert host.file(BASE).user == "root"


def test_service_runs_as_the_unprivileged_user(host):
    pid = host.check_output(f"systemctl show -p MainPID --value {SERVICE}")
    assert pid != "0"
    user = host.check_output(f"ps -o user= -p {pid}")
    assert user == USER
    assert host.check_output(f"ps -o uid= -p {pid}") != "0"
    assert host.user(USER).shell == "/usr/sbin/nologin"


def test_environment_file_is_root_only_and_complete(host):
    env = host.file(ENV_FILE)
    assert env.mode == 0o600
    assert env.user == "root"
    names = set(re.findall(r"^([A-Z_]+)=", env.content_string, re.M))
    assert {"PORT", "SERVER_ID", "DATABASE_URL", "DB_POOL_MAX", "REDIS_URL", "AUTH_SECRET", "JOB_INTERVAL_MS"} <= names
    assert host.file(f"/etc/{SERVICE}").mode == 0o700


def test_unit_is_sandboxed_and_stops_gracefully(host):
    show = dict(
        line.split("=", 1)
        for line in host.check_output(
            f"systemctl show {SERVICE} -p User -p NoNewPrivileges -p ProtectSystem -p ProtectHome -p PrivateTmp "
            "-p CapabilityBoundingSet -p RestrictAddressFamilies -p SystemCallFilter -p Restart -p KillSignal "
            "-p TimeoutStopUSec -p ExecStart -p WorkingDirectory -p ReadWritePaths"
        ).splitlines()
    )
    assert show["User"] == USER
    assert show["NoNewPrivileges"] == "yes"
    assert show["ProtectSystem"] == "strict"
    assert show["ProtectHome"] == "yes"
    assert show["PrivateTmp"] == "yes"
    assert show["CapabilityBoundingSet"] == ""
    assert show["ReadWritePaths"] == ""  # the sample app writes nothing
    assert set(show["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert show["Restart"] == "on-failure"
    assert show["KillSignal"] == "15"
    # the app's forced exit comes after SHUTDOWN_TIMEOUT_MS (10 s): systemd must wait longer
    assert show["TimeoutStopUSec"] == "15s"
    assert "path=/usr/bin/node" in show["ExecStart"] and "dist/src/server.js" in show["ExecStart"]
    assert show["WorkingDirectory"] == f"{BASE}/current"


def test_systemd_analyze_security_rates_the_unit_ok_or_better(host, name):
    out = host.check_output(f"systemd-analyze security {SERVICE}.service --no-pager")
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", out)
    assert match, out[-500:]
    score, level = float(match.group(1)), match.group(2)
    print(f"systemd-analyze security {SERVICE}.service on {name}: {score} {level}")
    labkit.record(f"systemd-analyze security exposure ({name})", f"{score} {level}")
    assert level in ("SAFE", "OK"), f"{score} {level}"


def test_health(name):
    status, body, headers = http(name, "GET", "/health")
    assert status == 200
    assert body["status"] == "ok" and body["timestamp"]
    assert headers["x-server-id"] == name


def test_health_detailed_checks_database_and_redis_for_real(name):
    status, body = http(name, "GET", "/health/detailed")[:2]
    assert status == 200, body
    assert body["status"] == "healthy"
    assert body["checks"] == {"database": "ok", "redis": "ok"}
    assert body["release"] == "1.0.0"
    assert body["server"] == name


def test_health_ready_and_live(name):
    status, body = http(name, "GET", "/health/ready")[:2]
    assert status == 200 and body["ready"] is True
    status, body = http(name, "GET", "/health/live")[:2]
    assert status == 200 and body["alive"] is True and body["uptime"] > 0


def test_login_answers_4xx_on_bad_input_never_5xx(name):
    assert http(name, "POST", "/api/auth/login", {"email": "test@church.com", "password": "wrong"})[0] == 401
    assert http(name, "POST", "/api/auth/login", {"email": "not-an-email"})[0] == 400
    status, body = http(name, "POST", "/api/auth/login", {"email": "test@church.com", "password": "password"})[:2]
    assert status == 200 and body["token"]


def test_messages_need_a_token_and_insert_a_row(name):
    content = {"content": f"smoke test from {name}", "targetType": "group", "targetIds": ["group-1"]}
    assert http(name, "POST", "/api/messages", content)[0] == 401
    token = http(name, "POST", "/api/auth/login", {"email": "test@church.com", "password": "password"})[1]["token"]
    status, row = http(name, "POST", "/api/messages", content, token=token)[:2]
    assert status == 201, row
    assert row["id"] and row["server"] == name and row["release"] == "1.0.0"
    status, listing = http(name, "GET", "/api/messages?limit=5", token=token)[:2]
    assert status == 200 and row["id"] in [m["id"] for m in listing["messages"]]


def test_admin_locks_lists_held_job_locks(name):
    status, body = http(name, "GET", "/admin/locks")[:2]
    assert status == 200 and isinstance(body, list)
    for lock in body:
        assert lock["key"].startswith("lock:job:") and lock["ttl_ms"] > 0


def test_drain_hook_ran_before_the_restart_and_undrain_after_readiness(name):
    words = labkit.docker_exec(name, "cat /var/tmp/ywlab-lb-hooks.log", check=False).stdout.split()
    events = list(zip(words[0::2], map(float, words[1::2])))
    # the last drain, then an undrain (every later run of the role undrains again: idempotent)
    last_drain = max(i for i, (what, _unused) in enumerate(events) if what == "drain")
    after = [when for what, when in events[last_drain + 1 :] if what == "undrain"]
    assert after, events
    drained, undrained = events[last_drain][1], after[0]
    started = labkit.docker_exec(
        name, f'date -d "$(systemctl show -p ActiveEnterTimestamp --value {SERVICE})" +%s', check=False
    ).stdout
    assert drained - 1 <= int(started) <= undrained, (drained, started, undrained)
    assert labkit.docker_exec(name, "test -e /var/tmp/ywlab-lb-drained", check=False).returncode != 0, "left drained"
