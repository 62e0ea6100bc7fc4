"""Runbook steps 2-5 on each PgBouncer host: installed from Debian, configured, secrets safe, running."""

import re

import labkit
import pytest
import yaml
from pgblab import LAB, host_vars, pool_limit

testinfra_hosts = ["pgbouncer-bookworm", "pgbouncer-trixie"]

RELEASES = {"pgbouncer-bookworm": ("bookworm", "1.18."), "pgbouncer-trixie": ("trixie", "1.24.")}


@pytest.fixture
def name(host):
    return host.backend.get_hostname()


def show_config(host):
    out = host.check_output(
        "runuser -u postgres -- psql -X -A -t -F '|' -h /var/run/postgresql -p 6432 "
        "-U pgbouncer -d pgbouncer -c 'SHOW CONFIG'"
    )
    return {line.split("|")[0]: line.split("|") for line in out.splitlines() if "|" in line}


def test_pgbouncer_from_the_distribution_runs_and_starts_at_boot(host, name):
    codename, version = RELEASES[name]
    assert host.system_info.codename == codename
    assert host.package("pgbouncer").is_installed
    assert host.check_output("pgbouncer --version").startswith("PgBouncer " + version)
    service = host.service("pgbouncer")
    assert service.is_running
    assert service.is_enabled


def test_listens_on_the_lab_address_and_loopback_only(host):
    address = host.interface("eth0").addresses[0]
    listening = host.check_output("ss -H -ltn 'sport = :6432'")
    local = sorted(line.split()[3] for line in listening.splitlines())
    assert local == sorted(["%s:6432" % address, "127.0.0.1:6432"]), listening
    assert host.socket("unix:///var/run/postgresql/.s.PGSQL.6432").is_listening


def test_configuration_has_the_runbook_pooling_settings(host):
    config = show_config(host)
    expected = {
        "pool_mode": "transaction",
        "default_pool_size": "30",
        "max_client_conn": "1000",
        "reserve_pool_size": "5",
        "auth_type": "scram-sha-256",
        "admin_users": "pgbouncer_admin",
        "stats_users": "pgbouncer_stats",
        "logfile": "/var/log/pgbouncer/pgbouncer.log",
        "server_reset_query_always": "0",
    }
    assert {key: config[key][1] for key in expected} == expected


def test_every_startup_only_setting_restarts_instead_of_reloading(host):
    """The role restarts only for settings PgBouncer cannot change at a reload: its list must be complete."""
    with open(labkit.PROJECT + "/roles/pgbouncer/vars/main.yml", encoding="utf-8") as fh:
        startup_only = set(yaml.safe_load(fh)["__pgbouncer_startup_only_settings"])
    not_changeable = {key for key, row in show_config(host).items() if row[3] == "no"}
    assert not_changeable, "SHOW CONFIG reported no startup-only setting"
    assert not_changeable <= startup_only, not_changeable - startup_only


def test_auth_file_is_private_and_holds_no_plaintext_unless_asked(host, name):
    auth_file = host.file("/etc/pgbouncer/userlist.txt")
    assert (auth_file.user, auth_file.group, auth_file.mode) == ("postgres", "postgres", 0o600)
    entries = dict(re.findall(r'^"([^"]+)" "([^"]*)"$', auth_file.content_string, re.MULTILINE))
    users = {u["name"] for u in host_vars(name)["pgbouncer_users"]}
    if host_vars(name).get("pgbouncer_auth_query_enabled"):
        # The auth user's password is the one plaintext PgBouncer needs (it logs in with it for lookups).
        assert entries.pop("pgbouncer_auth") == LAB["lab_pgbouncer_auth_password"]
    assert set(entries) == users
    for user, secret in entries.items():
        assert re.match(r"^SCRAM-SHA-256\$4096:[^$]+\$[^:]+:.+$", secret), user
    content = auth_file.content_string
    for key in ("lab_app_password", "lab_pgbouncer_admin_password", "lab_pgbouncer_stats_password"):
        assert LAB[key] not in content


def test_logs_go_to_var_log_pgbouncer_and_rotate_daily(host):
    log_dir = host.file("/var/log/pgbouncer")
    assert log_dir.is_directory
    assert (log_dir.user, log_dir.mode) == ("postgres", 0o750)
    assert "process up" in host.file("/var/log/pgbouncer/pgbouncer.log").content_string
    rotate = host.run("logrotate --debug /etc/logrotate.d/pgbouncer-ywmessaging")
    assert rotate.rc == 0, rotate.stderr
    assert "/var/log/pgbouncer/*.log" in rotate.stdout + rotate.stderr


def test_open_files_limit_covers_every_client_and_server_connection(host, name):
    pid = host.check_output("systemctl show --property MainPID --value pgbouncer")
    limits = host.file("/proc/%s/limits" % pid).content_string
    soft = int(re.search(r"^Max open files\s+(\d+)", limits, re.MULTILINE).group(1))
    server_connections = host_vars(name).get("pgbouncer_max_db_connections") or pool_limit()
    assert soft >= 1000 + server_connections, limits


def test_the_configuration_checker_rejects_a_bad_file_and_accepts_the_live_one(host):
    good = host.run("pgbouncer-check-config /etc/pgbouncer/pgbouncer.ini")
    assert good.rc == 0, good.stderr
    bad = host.run(
        "f=$(mktemp) && sed 's/^pool_mode = .*/pool_mode = sometimes/' /etc/pgbouncer/pgbouncer.ini > $f "
        "&& pgbouncer-check-config $f; rc=$?; rm -f $f; exit $rc"
    )
    assert bad.rc == 1
    assert 'invalid value "sometimes" for parameter pool_mode' in bad.stderr
