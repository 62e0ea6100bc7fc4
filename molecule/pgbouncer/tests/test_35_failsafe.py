"""Fail safe: bad input is refused before anything changes, a configuration that does not come up is
rolled back, and PgBouncer comes back by itself after kill -9.

Runs once (on the database host's entry): these tests drive Ansible, clients and faults from the
controller, against both PgBouncer hosts (1.18 on bookworm, 1.24 on trixie).
"""

import json
import re
import shlex
import subprocess
import threading
import time

import labkit
import pytest
from pgblab import (
    DB_HOST,
    LAB,
    PGBOUNCER_HOSTS,
    failure_messages,
    fingerprint,
    json_env,
    main_pid,
    psql,
)

testinfra_hosts = [DB_HOST]

ADMIN = {"user": "pgbouncer_admin", "password": LAB["lab_pgbouncer_admin_password"], "dbname": "pgbouncer"}
DATABASE = {"name": "appdb", "host": "pgbouncer-db", "port": 5432}

# One converge run per class of bad input, on both hosts, not in check mode: validation must stop
# it before anything changes. Each case: extra vars, and what the one failure message must say.
BAD_INPUT = {
    "listen_port out of range": (
        {"pgbouncer_listen_port": 70000},
        ["pgbouncer_listen_port must be a TCP port, 1-65535, got 70000"],
    ),
    "listen_addr not on the host": (
        {"pgbouncer_listen_addr": ["192.0.2.10", "127.0.0.1"]},
        ['pgbouncer_listen_addr lists "192.0.2.10", not an address of'],
    ),
    "newline in a database host and dbname": (
        {
            "pgbouncer_databases": [
                dict(DATABASE, host="pgbouncer-db\nauth_user=postgres"),
                dict(DATABASE, name="other", dbname="appdb\n[pgbouncer]"),
            ]
        },
        ["pgbouncer_databases[0] (appdb).host", "pgbouncer_databases[1] (other).dbname", "no blank, newline"],
    ),
    "invalid database name": (
        {"pgbouncer_databases": [dict(DATABASE, name="app db")]},
        ['pgbouncer_databases[0].name "app db" must be'],
    ),
    "extra_settings overriding auth_type": (
        {"pgbouncer_extra_settings": {"auth_type": "trust", "listen_port": 5432}},
        [
            "pgbouncer_extra_settings must not set what the role writes itself",
            "auth_type (use pgbouncer_auth_type)",
            "listen_port (use pgbouncer_listen_port)",
        ],
    ),
    "zero pool size and negative timeout": (
        {"pgbouncer_default_pool_size": 0, "pgbouncer_server_connect_timeout": -1},
        [
            "2 problem(s)",
            "pgbouncer_default_pool_size must be 1-10000, got 0",
            "pgbouncer_server_connect_timeout must be 1-3600",
        ],
    ),
    "a newline in a setting value and a user name": (
        {
            "pgbouncer_server_check_query": "select 1\nauth_type = trust",
            "pgbouncer_extra_settings": {"application_name_add_host": "1\nauth_type = trust"},
            "pgbouncer_users": [{"name": "app\nevil", "password": "x"}],
            "pgbouncer_admin_users": [],
            "pgbouncer_stats_users": [],
        },
        [
            "pgbouncer_server_check_query must not contain a newline",
            "pgbouncer_extra_settings values must be a string, number or boolean without a newline",
            "pgbouncer_users[0].name",
        ],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_refused_naming_the_variable_and_nothing_changes(case):
    variables, expected = BAD_INPUT[case]
    before = {name: fingerprint(name) for name in PGBOUNCER_HOSTS}
    run = labkit.play("converge.yml", "-e", json.dumps(variables), timeout=600, env=json_env())
    assert run.rc != 0, run.stdout[-3000:]
    failures = failure_messages(run)
    for name in PGBOUNCER_HOSTS:
        message = failures.get(name, "")
        for phrase in expected:
            assert phrase in message, "%s: %r not in %s" % (name, phrase, message)
        assert fingerprint(name) == before[name], "%s changed although its input was refused" % name
    print("%s: refused in %.1f s: %s" % (case, run.seconds, failures[PGBOUNCER_HOSTS[0]][:300]))


def test_the_validate_entry_point_checks_the_argument_spec_itself_and_changes_nothing():
    """tasks_from=validate gets no automatic argument spec check: the entry point must run main's."""
    before = {name: fingerprint(name) for name in PGBOUNCER_HOSTS}
    good = labkit.play("validate.yml", "--check", timeout=600)
    assert good.rc == 0, good.stdout[-3000:]
    assert all((r["changed"], r["failed"]) == (0, 0) for r in good.recap.values()), good.stdout
    bad = labkit.play("validate.yml", "-e", "pgbouncer_listen_port=abc", timeout=600, env=json_env())
    assert bad.rc != 0
    failures = failure_messages(bad)
    assert set(failures) == set(PGBOUNCER_HOSTS), failures
    for message in failures.values():
        assert "problem(s) with the pgbouncer role's variables" in message, message
        assert "pgbouncer_listen_port" in message and "int" in message, message
    real = labkit.play("validate.yml", timeout=600)  # not in check mode either
    assert real.rc == 0, real.stdout[-3000:]
    assert all(r["changed"] == 0 for r in real.recap.values()), real.stdout
    assert {name: fingerprint(name) for name in PGBOUNCER_HOSTS} == before


def test_the_checker_refuses_listeners_that_cannot_come_up():
    """pgbouncer-check-config checks listen_addr and listen_port itself (a throw-away PgBouncer cannot
    bind the port the live one holds): the live file passes, a port of another process and an address
    the host does not have do not."""
    script = r"""
    set -u
    f=$(mktemp); g=$(mktemp)
    python3 -c 'import socket,time;s=socket.socket();s.bind(("0.0.0.0",6477));s.listen();time.sleep(30)' &
    holder=$!
    sleep 1
    sed 's/^listen_port = .*/listen_port = 6477/' /etc/pgbouncer/pgbouncer.ini > $f
    sed 's/^listen_addr = .*/listen_addr = 192.0.2.10/' /etc/pgbouncer/pgbouncer.ini > $g
    pgbouncer-check-config /etc/pgbouncer/pgbouncer.ini >/dev/null 2>&1; echo "live=$?"
    pgbouncer-check-config $f 2>&1; echo "taken=$?"
    pgbouncer-check-config $g 2>&1; echo "absent=$?"
    kill $holder; rm -f $f $g
    """
    for name in PGBOUNCER_HOSTS:
        out = labkit.docker_exec(name, script, sh="bash", timeout=300).stdout
        assert "live=0" in out, out
        assert "taken=1" in out and re.search(r"listen_port 6477 on .* is already taken by python3 \(pid \d+\)", out), (
            out
        )
        assert "absent=1" in out and "listen_addr 192.0.2.10: postgres cannot listen there" in out, out


# Waits until the role has written the new port into the live file (after the checker passed), then
# takes that port on every address, as another service starting at the wrong moment would.
GRABBER = r"""
: ywlab-grabber
until grep -q '^listen_port = %(port)d$' /etc/pgbouncer/pgbouncer.ini; do sleep 0.02; done
exec python3 -c '# ywlab-grabber
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", %(port)d))
s.listen()
time.sleep(600)'
"""
STOP_GRABBER = "pkill -f 'ywlab[-]grabber'"  # the pattern does not match this shell's own command line
TAKEN_PORT = 6433


def test_a_configuration_that_does_not_come_up_is_rolled_back_and_pgbouncer_keeps_serving():
    """The new listen_port passes validation and the checker, but another process takes it before the
    restart: PgBouncer 1.18 comes up on its unix socket alone, 1.24 exits. The role must put the
    previous files back, bring PgBouncer up on them and fail naming the cause."""
    before = {name: fingerprint(name) for name in PGBOUNCER_HOSTS}
    for name in PGBOUNCER_HOSTS:
        # Detached (docker exec -d): labkit.docker_exec waits for its command, docker_popen holds it.
        labkit.run(["docker", "exec", "-d", name, "bash", "-c", GRABBER % {"port": TAKEN_PORT}], timeout=60)
    try:
        run = labkit.play("converge.yml", "-e", "pgbouncer_listen_port=%d" % TAKEN_PORT, timeout=600, env=json_env())
        holders = {
            name: labkit.docker_exec(name, "ss -Hltnp 'sport = :%d'" % TAKEN_PORT, sh="bash", check=False).stdout
            for name in PGBOUNCER_HOSTS
        }
    finally:
        for name in PGBOUNCER_HOSTS:
            labkit.docker_exec(name, STOP_GRABBER, sh="bash", check=False)
    assert run.rc != 0
    failures = failure_messages(run)
    for name in PGBOUNCER_HOSTS:
        assert "python3" in holders[name], "%s: the port was never taken, nothing was tested: %s" % (
            name,
            holders[name],
        )
        message = failures.get(name, "")
        assert "PgBouncer did not come up on the new configuration" in message, message
        assert "pgbouncer_listen_port (listen_port)" in message, message
        assert "Address already in use" in message, message
        assert "PgBouncer serves on them again" in message, message
        # The previous files (and no backup copies), PgBouncer on the previous port, serving clients.
        after = fingerprint(name)
        assert re.sub(r"MainPID=\d+", "", after) == re.sub(r"MainPID=\d+", "", before[name]), after
        assert labkit.docker_exec(name, "systemctl is-active pgbouncer", check=False).stdout.strip() == "active"
        query = psql(name, "SELECT 1")
        assert (query.returncode, query.stdout.strip()) == (0, "1"), query.stderr
        shown = psql(name, "SHOW CONFIG", **ADMIN)
        assert "listen_port|6432|" in shown.stdout, shown.stdout
        print("%s: rolled back in a %.0f s run: %s" % (name, run.seconds, message[:400]))


def test_the_restart_policy_drop_in_is_in_force():
    for name in PGBOUNCER_HOSTS:
        shown = labkit.docker_exec(
            name, "systemctl show --property=Restart,RestartUSec,StartLimitIntervalUSec pgbouncer", sh="bash"
        ).stdout.split()
        assert sorted(shown) == ["Restart=on-failure", "RestartUSec=1s", "StartLimitIntervalUSec=0"], shown


RECOVERY = r"""
# Query PgBouncer every 0.1 s until a query through it succeeds; print when (epoch seconds).
deadline=$(( $(date +%%s) + %(seconds)d ))
while [ "$(date +%%s)" -lt "$deadline" ]; do
  if psql -X -A -t -h %(target)s -p 6432 -U app -d appdb -c 'SELECT 1' >/dev/null 2>&1; then
    echo "back_at=$(date +%%s.%%N)"; exit 0
  fi
  sleep 0.1
done
echo "never_back"; exit 1
"""
SERVED = re.compile(r"^progress: .* [1-9][0-9.]* tps")
LOAD = (
    "pgbench --no-vacuum --select-only --client=20 --jobs=2 --time=60 --progress=1"
    " --host=%(target)s --port=6432 --username=app appdb"
)


@pytest.mark.parametrize("name", PGBOUNCER_HOSTS)
def test_kill_9_under_load_pgbouncer_comes_back_by_itself(name):
    """pgbench runs through PgBouncer; kill -9 of its main process (what the OOM killer does)."""
    env = {"PGPASSWORD": LAB["lab_app_password"]}
    old_pid = main_pid(name)
    restarts = labkit.docker_exec(name, "systemctl show --property NRestarts --value pgbouncer").stdout.strip()
    load = labkit.docker_popen(
        DB_HOST, LOAD % {"target": name}, env=env, user="postgres", sh="bash", stderr=subprocess.STDOUT
    )
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(load.stdout), daemon=True)
    reader.start()
    try:
        # The kill comes only once pgbench has reported transactions served through PgBouncer (a
        # progress line with a non-zero rate), so the drill is "kill under load", not "kill at connect".
        deadline = time.monotonic() + 60
        while not any(SERVED.search(line) for line in list(lines)):
            if time.monotonic() > deadline or load.poll() is not None:
                pytest.fail("pgbench never reported transactions through %s:\n%s" % (name, "".join(lines)))
            time.sleep(0.2)
        pools = psql(name, "SHOW POOLS", **ADMIN).stdout
        assert any(  # the 20 clients are still there, served (cl_active) or queued (cl_waiting)
            line.startswith("appdb|app|") and sum(map(int, line.split("|")[2:4])) >= 20 for line in pools.splitlines()
        ), pools
        killed = labkit.docker_exec(name, "kill -9 %s && date +%%s.%%N" % shlex.quote(old_pid)).stdout.strip()
        back = labkit.docker_exec(
            DB_HOST, RECOVERY % {"target": name, "seconds": 60}, env=env, sh="bash", timeout=120, check=False
        )
        load.wait(timeout=120)
        reader.join(timeout=10)
    finally:
        if load.poll() is None:
            load.kill()
    assert "back_at=" in back.stdout, "PgBouncer did not come back within 60 s after kill -9: %s" % back.stdout
    seconds = float(back.stdout.split("back_at=")[1].split()[0]) - float(killed)
    new_pid = main_pid(name)
    assert new_pid not in ("0", old_pid), (old_pid, new_pid)
    now = labkit.docker_exec(name, "systemctl show --property NRestarts --value pgbouncer", sh="bash").stdout.strip()
    assert int(now) > int(restarts), (restarts, now)  # systemd restarted it (Restart=), nobody else
    assert seconds < 15, "%s: %.1f s until a query through PgBouncer worked again" % (name, seconds)
    print(
        "%s: kill -9 under load -> systemd restarted PgBouncer (pid %s -> %s); a query worked again after %.2f s"
        % (name, old_pid, new_pid, seconds)
    )


def test_the_disable_entry_point_stops_pgbouncer_idempotently_and_safely_in_check_mode():
    name = "pgbouncer-bookworm"
    check = labkit.play("disable.yml", "--check", "--limit", name, timeout=600)
    assert check.rc == 0, check.stdout[-3000:]
    assert check.host(name)["changed"] == 1, check.stdout
    assert labkit.docker_exec(name, "systemctl is-active pgbouncer", check=False).stdout.strip() == "active"
    try:
        first = labkit.play("disable.yml", "--limit", name, timeout=600)
        assert first.rc == 0, first.stdout[-3000:]
        assert first.host(name)["changed"] == 1, first.stdout
        state = labkit.docker_exec(
            name, "systemctl is-active pgbouncer; systemctl is-enabled pgbouncer", sh="bash", check=False
        ).stdout.split()
        assert state == ["inactive", "disabled"], state
        time.sleep(3)  # a clean stop: Restart=on-failure must not start it again
        assert labkit.docker_exec(name, "systemctl is-active pgbouncer", check=False).stdout.strip() == "inactive"
        again = labkit.play("disable.yml", "--limit", name, timeout=600)
        assert again.rc == 0 and again.host(name)["changed"] == 0, again.stdout
    finally:
        labkit.docker_exec(name, "systemctl enable --now pgbouncer", sh="bash")
    deadline = time.monotonic() + 30
    while psql(name, "SELECT 1").returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert psql(name, "SELECT 1").returncode == 0
