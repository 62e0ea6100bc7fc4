"""The pgbouncer scenario's own helpers (not a test module), built on molecule/_shared/labkit.py.

The lab's values, the runbook's clients on the database host (psql and pgbench run on pgbouncer-db
and reach PgBouncer over the lab network), ad hoc modules and the json callback's output. Commands
in containers, playbook runs and their PLAY RECAP come from labkit (conftest.py puts it on sys.path).
"""

import json
import os
import re
import shlex
import time

import labkit
import yaml

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DB_HOST = "pgbouncer-db"
PGBOUNCER_HOSTS = ["pgbouncer-bookworm", "pgbouncer-trixie"]


def _load(*parts):
    with open(os.path.join(SCENARIO, "inventory", *parts), encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


LAB = _load("group_vars", "all.yml")
PGBOUNCER_VARS = _load("group_vars", "pgbouncer.yml")
PER_HOST_VARS = {name: _load("host_vars", name + ".yml") for name in ["pgbouncer-trixie"]}


def host_vars(name):
    """The role variables a PgBouncer host gets (group vars, then its host vars)."""
    merged = dict(PGBOUNCER_VARS)
    merged.update(PER_HOST_VARS.get(name, {}))
    return merged


def pool_limit():
    """What one (database, user) pool may open: default_pool_size + reserve_pool_size (role defaults)."""
    return PGBOUNCER_VARS.get("pgbouncer_default_pool_size", 30) + PGBOUNCER_VARS.get("pgbouncer_reserve_pool_size", 5)


def psql(target, sql, user="app", password=None, dbname="appdb", port=6432):
    """psql on the database host against `target` (a PgBouncer host or the database host itself).
    Not checked: tests read rc and stderr themselves."""
    password = LAB["lab_app_password"] if password is None else password
    command = "psql -X -A -t -h %s -p %d -U %s -d %s -c %s" % (target, port, user, dbname, shlex.quote(sql))
    return labkit.docker_exec(DB_HOST, command, env={"PGPASSWORD": password}, sh="bash", timeout=60, check=False)


def pg_superuser(sql, dbname="appdb"):
    """psql as the postgres superuser on the database host (unix socket)."""
    command = "psql -X -A -t -d %s -c %s" % (dbname, shlex.quote(sql))
    return labkit.docker_exec(DB_HOST, command, user="postgres", sh="bash", timeout=60)


def app_backends():
    """PostgreSQL backends of the app user right now."""
    sql = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'"
    return int(pg_superuser(sql).stdout.strip())


def settle_pgbouncer_servers():
    """Make every PgBouncer close its idle server connections (PAUSE waits for them, then disconnects).

    Then PostgreSQL's backends of the app user belong to whatever runs next. Server connections are
    counted this way (by user, one PgBouncer at a time) rather than by client address, because a host
    with leftover NAT rules can show every lab peer as the network's gateway.
    """
    for name in PGBOUNCER_HOSTS:
        for command in ("PAUSE appdb", "RESUME appdb"):
            proc = psql(
                name, command, user="pgbouncer_admin", password=LAB["lab_pgbouncer_admin_password"], dbname="pgbouncer"
            )
            assert proc.returncode == 0, proc.stderr
    deadline = time.monotonic() + 30
    while app_backends() and time.monotonic() < deadline:
        time.sleep(0.5)  # closed server connections take a moment to leave pg_stat_activity
    assert app_backends() == 0, "PostgreSQL still has app backends after every PgBouncer let go of its servers"


SAMPLER = r"""
samples=$(mktemp); out=$(mktemp)
# One psql session counts PostgreSQL's backends of the app user every 0.2 s for as long as pgbench runs.
psql -X -A -t -q >> "$samples" 2>/dev/null <<'SQL' &
SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend' \watch 0.2
SQL
sampler=$!
PGPASSWORD="$APP_PASSWORD" pgbench --no-vacuum --client=%(clients)d --jobs=%(jobs)d --time=%(seconds)d %(extra)s \
  --host=%(target)s --port=%(port)d --username=app appdb > "$out" 2>&1
rc=$?
kill "$sampler"; wait "$sampler" 2>/dev/null
cat "$out"
echo "pgbench_rc=$rc"
echo "server_connections_max=$(sort -n "$samples" | tail -n 1)"
echo "server_connections_samples=$(grep -c . "$samples")"
rm -f "$samples" "$out"
"""


def pgbench(target, clients, seconds, port=6432, jobs=4, extra=""):
    """pgbench from the database host, sampling PostgreSQL's backends of the app user every 0.2 s."""
    script = SAMPLER % {
        "clients": clients,
        "jobs": jobs,
        "seconds": seconds,
        "extra": extra,
        "target": target,
        "port": port,
    }
    proc = labkit.docker_exec(
        DB_HOST,
        script,
        env={"APP_PASSWORD": LAB["lab_app_password"]},
        user="postgres",
        sh="bash",
        timeout=seconds + 240,
        check=False,  # pgbench_rc says how pgbench ended: some tests expect it to fail
    )
    return parse_pgbench(proc.stdout + proc.stderr)


def parse_pgbench(text):
    def number(pattern, cast=float):
        match = re.search(pattern, text, re.MULTILINE)
        return cast(match.group(1)) if match else None

    return {
        "output": text,
        "rc": number(r"^pgbench_rc=(\d+)", int),
        "clients": number(r"^number of clients: (\d+)", int),
        "processed": number(r"^number of transactions actually processed: (\d+)", int),
        "failed": number(r"^number of failed transactions: (\d+)", int),
        "tps": number(r"^tps = ([0-9.]+)"),
        "latency_ms": number(r"^latency average = ([0-9.]+) ms"),
        "server_connections_max": number(r"^server_connections_max=(\d+)", int),
        "server_connections_samples": number(r"^server_connections_samples=(\d+)", int),
    }


def json_env():
    """The environment of an Ansible run whose output is the json callback's one document."""
    return labkit.ansible_env(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")


def ansible_module(hosts, module, args):
    """Run one module ad hoc; return {host: result dict} from the json callback."""
    argv = [labkit.ansible_bin("ansible"), hosts, "-i", labkit.molecule_inventory(), "-m", module]
    proc = labkit.run([*argv, "-a", json.dumps(args)], timeout=300, check=False, env=json_env())
    what = "ansible -m %s (rc %s, stderr %s)" % (module, proc.returncode, proc.stderr[-2000:])
    data = labkit.parse_json_output(proc.stdout, what)
    results = {}
    for play in data["plays"]:
        for task in play["tasks"]:
            results.update(task["hosts"])
    return results


def task_results(run):
    """{host: [(task name, result)]} in the order the json callback reported them (a labkit.Run of a
    playbook run with env=json_env())."""
    document = labkit.parse_json_output(run.stdout, run.command)
    hosts = {}
    for play in document["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                hosts.setdefault(host, []).append((task["task"]["name"], result))
    return hosts


def failure_messages(run):
    """{host: msg of the task that failed it} (the last failed result of each host)."""
    failed = {}
    for host, results in task_results(run).items():
        for _name, result in results:
            if result.get("failed") and not result.get("ignored"):
                failed[host] = str(result.get("msg", ""))
    return failed


# What must not move when a run is refused: the files the role writes and the running process.
FINGERPRINT = (
    "cd / && sha256sum /etc/pgbouncer/pgbouncer.ini /etc/pgbouncer/userlist.txt"
    " /etc/systemd/system/pgbouncer.service.d/* && ls -1 /etc/pgbouncer /etc/systemd/system/pgbouncer.service.d"
    " && echo MainPID=$(systemctl show --property MainPID --value pgbouncer)"
)


def fingerprint(name):
    """sha256 of pgbouncer.ini, userlist.txt and the drop-ins, the files there, and PgBouncer's MainPID."""
    return labkit.docker_exec(name, FINGERPRINT, sh="bash").stdout


def main_pid(name):
    return labkit.docker_exec(name, "systemctl show --property MainPID --value pgbouncer", sh="bash").stdout.strip()
