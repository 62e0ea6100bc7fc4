"""A pool size change is applied with a reload while clients stay connected.

Runs last: it re-runs the role with pgbouncer_default_pool_size = 40 (and pgbouncer_restart_sec = 2,
which needs only a daemon-reload) and leaves the hosts so (the test sequence destroys them next;
`molecule converge` puts 30 back before another `molecule verify`).

pgbench keeps 100 client connections open on each PgBouncer host, and reports progress every second,
while the role runs again with pgbouncer_default_pool_size = 40. pgbench aborts a client whose
connection breaks and says so; it is stopped once the role is done, so the proof does not depend on
how long the role takes.
"""

import re
import subprocess
import time

import labkit
from pgblab import DB_HOST, LAB, PGBOUNCER_HOSTS, main_pid, psql

testinfra_hosts = [DB_HOST]

NEW_POOL_SIZE = 40
NEW_RESTART_SEC = 2  # the restart policy drop-in changes too: a daemon-reload, not a restart
CLIENTS = 100
LOAD = r"""
PGPASSWORD="$APP_PASSWORD" pgbench --no-vacuum --select-only --client=%(clients)d --jobs=2 --rate=200 --time=900 \
  --progress=1 --host=%(target)s --port=6432 --username=app appdb &
echo $! > /tmp/reload-load-%(target)s.pid
wait
"""


def start_load(target):
    return labkit.docker_popen(
        DB_HOST,
        LOAD % {"clients": CLIENTS, "target": target},
        env={"APP_PASSWORD": LAB["lab_app_password"]},
        user="postgres",
        workdir="/",
        sh="bash",
        stderr=subprocess.STDOUT,
    )


def stop_load(target, proc):
    labkit.docker_exec(DB_HOST, "kill -TERM $(cat /tmp/reload-load-%s.pid)" % target, user="postgres", check=False)
    try:
        return proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()


def tasks_changed(output, task):
    """Hosts a task of the role reported changed in a playbook's default output."""
    header = "TASK [ywmessaging.scaling.pgbouncer : %s]" % task
    assert header in output, "no task %r in the output" % task
    block = output.split(header, 1)[1].split("\nTASK [", 1)[0]
    return set(re.findall(r"^changed: \[([^\]]+)\]", block, re.MULTILINE))


def console(name, sql):
    shown = psql(name, sql, user="pgbouncer_stats", password=LAB["lab_pgbouncer_stats_password"], dbname="pgbouncer")
    assert shown.returncode == 0, shown.stderr
    return [line.split("|") for line in shown.stdout.splitlines() if "|" in line]


def running_setting(name, key):
    return dict(row[:2] for row in console(name, "SHOW CONFIG"))[key]


def app_clients(name):
    """Client connections of the app user to appdb (SHOW CLIENTS)."""
    return sum(1 for row in console(name, "SHOW CLIENTS") if row[1:3] == ["app", "appdb"])


def wait_for_clients(name, count, seconds=120):
    deadline = time.monotonic() + seconds
    while app_clients(name) < count and time.monotonic() < deadline:
        time.sleep(1)
    return app_clients(name)


def test_a_new_default_pool_size_is_reloaded_while_pgbench_clients_stay_connected():
    pids = {name: main_pid(name) for name in PGBOUNCER_HOSTS}
    loads = {name: start_load(name) for name in PGBOUNCER_HOSTS}
    outputs = {}
    try:
        for name in PGBOUNCER_HOSTS:
            assert wait_for_clients(name, CLIENTS) == CLIENTS
        run = labkit.play(
            "converge.yml",
            "-e",
            "pgbouncer_default_pool_size=%d" % NEW_POOL_SIZE,
            "-e",
            "pgbouncer_restart_sec=%d" % NEW_RESTART_SEC,
            timeout=600,
        )
        time.sleep(3)  # a few more seconds of traffic on the reloaded configuration
        still_connected = {name: app_clients(name) for name in PGBOUNCER_HOSTS}
    finally:
        for name, proc in loads.items():
            outputs[name] = stop_load(name, proc)
    output = run.output
    assert run.rc == 0, output
    assert tasks_changed(output, "Reload PgBouncer (connected clients stay connected)") == set(PGBOUNCER_HOSTS), output
    assert tasks_changed(output, "Restart PgBouncer (a startup-only setting or the open-files limit changed)") == set()
    hosts = run.recap
    for name in PGBOUNCER_HOSTS:
        assert hosts[name]["changed"] >= 1, output
        assert main_pid(name) == pids[name], "%s was restarted, not reloaded" % name
        assert running_setting(name, "default_pool_size") == str(NEW_POOL_SIZE)
        restart_sec = labkit.docker_exec(name, "systemctl show --property RestartUSec --value pgbouncer", sh="bash")
        assert restart_sec.stdout.strip() == "%ds" % NEW_RESTART_SEC
        assert still_connected[name] == CLIENTS, still_connected
        load = outputs[name]
        progress = re.findall(r"^progress: ([0-9.]+) s, ([0-9.]+) tps, .*, (\d+) failed", load, re.MULTILINE)
        assert progress, load
        assert "error" not in load.lower() and "aborted" not in load, load
        assert all(line[2] == "0" for line in progress), load
        # pgbench ran through the whole role run and kept serving transactions until it was stopped.
        assert float(progress[-1][0]) >= run.seconds, (run.seconds, progress[-1])
        assert all(float(line[1]) > 0 for line in progress[-3:]), progress[-5:]
        log = labkit.docker_exec(
            name, "grep -c 'got SIGHUP, re-reading config' /var/log/pgbouncer/pgbouncer.log", sh="bash", check=False
        ).stdout
        assert int(log.strip() or 0) >= 1
