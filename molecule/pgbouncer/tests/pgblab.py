"""Helpers for the pgbouncer scenario's tests (not a test module).

The lab's values, clients on the database host, Ansible runs.

The runbook's clients (psql, pgbench) run on pgbouncer-db and reach PgBouncer over the lab network.
Ansible runs use Molecule's inventory (MOLECULE_INVENTORY_FILE) and the project's ansible.cfg.
"""

import json
import os
import re
import shlex
import subprocess
import time

import pytest
import yaml

SCENARIO = os.environ.get("MOLECULE_SCENARIO_DIRECTORY") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY") or os.path.dirname(os.path.dirname(SCENARIO))
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


def docker_exec(container, command, env=None, user=None, timeout=300, check=False):
    """Run a shell command in a lab container from the controller."""
    argv = ["docker", "exec"]
    for key, value in (env or {}).items():
        argv += ["-e", "%s=%s" % (key, value)]
    if user:
        argv += ["-u", user]
    argv += ["-w", "/", container, "bash", "-c", command]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, "%s: %s\n%s%s" % (container, command, proc.stdout, proc.stderr)
    return proc


def psql(target, sql, user="app", password=None, dbname="appdb", port=6432):
    """psql on the database host against `target` (a PgBouncer host or the database host itself)."""
    password = LAB["lab_app_password"] if password is None else password
    command = "psql -X -A -t -h %s -p %d -U %s -d %s -c %s" % (target, port, user, dbname, shlex.quote(sql))
    return docker_exec(DB_HOST, command, env={"PGPASSWORD": password}, timeout=60)


def pg_superuser(sql, dbname="appdb"):
    """psql as the postgres superuser on the database host (unix socket)."""
    command = "psql -X -A -t -d %s -c %s" % (dbname, shlex.quote(sql))
    return docker_exec(DB_HOST, command, user="postgres", timeout=60, check=True)


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
    proc = docker_exec(
        DB_HOST, script, env={"APP_PASSWORD": LAB["lab_app_password"]}, user="postgres", timeout=seconds + 240
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


def ansible_env():
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", os.path.join(PROJECT, "ansible.cfg"))
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(PROJECT, ".collections"))
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def inventory():
    path = os.environ.get("MOLECULE_INVENTORY_FILE")
    assert path, "MOLECULE_INVENTORY_FILE is not set: run through `molecule verify`"
    return path


def ansible_module(hosts, module, args):
    """Run one module ad hoc; return {host: result dict} from the json callback."""
    env = ansible_env()
    env.update({"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"})
    argv = ["ansible", hosts, "-i", inventory(), "-m", module, "-a", json.dumps(args)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(
            "ansible %s did not return JSON (rc %s): %s %s" % (module, proc.returncode, proc.stdout, proc.stderr)
        )
    results = {}
    for play in data["plays"]:
        for task in play["tasks"]:
            results.update(task["hosts"])
    return results


def ansible_playbook(playbook, *args, timeout=600, json_output=False):
    """Run a playbook of the scenario. json_output: the json callback; proc.json holds its document."""
    argv = ["ansible-playbook", "-i", inventory(), os.path.join(SCENARIO, playbook)] + list(args)
    env = ansible_env()
    if json_output:
        env.update({"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"})
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    proc.seconds = time.monotonic() - started
    if json_output:
        try:
            proc.json = json.loads(proc.stdout)
        except ValueError:
            pytest.fail("%s did not return JSON (rc %s): %s %s" % (playbook, proc.returncode, proc.stdout, proc.stderr))
    return proc


def task_results(document):
    """{host: [(task name, result)]} in the order the json callback reported them."""
    hosts = {}
    for play in document["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                hosts.setdefault(host, []).append((task["task"]["name"], result))
    return hosts


def failure_messages(document):
    """{host: msg of the task that failed it} (the last failed result of each host)."""
    failed = {}
    for host, results in task_results(document).items():
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
    return docker_exec(name, FINGERPRINT, check=True).stdout


def main_pid(name):
    return docker_exec(name, "systemctl show --property MainPID --value pgbouncer", check=True).stdout.strip()


def recap(output):
    """{host: {ok, changed, failed, ...}} from a playbook's PLAY RECAP."""
    hosts = {}
    for match in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", output, re.MULTILINE):
        hosts[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return hosts
