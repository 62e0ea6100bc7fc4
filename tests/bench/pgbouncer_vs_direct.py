# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: pgbench through PgBouncer (the pgbouncer role's defaults) vs straight to PostgreSQL.

Not a test: run it by hand from the repository root,

    .venv/bin/python tests/bench/pgbouncer_vs_direct.py [--clients 50,300,1000] [--seconds 20]
                                                        [--builtin select-only] [--keep]

It brings up three lab hosts with the shared lab machinery (tests/lab/tasks/start-hosts.yml,
prepare-hosts.yml, postgresql.yml), all Debian 12 systemd containers on the lab network:

  bench-pgb-db         PostgreSQL 15 with max_connections raised to --max-connections (1100), so
                       that even 1000 direct clients are accepted
  bench-pgb-pgbouncer  PgBouncer 1.18 set up by ywmessaging.scaling.pgbouncer (transaction pooling,
                       default_pool_size 30, reserve 5; max_client_conn 1100 for 1000 clients)
  bench-pgb-client     pgbench, the application servers' stand-in

For each client count it runs pgbench from the client host through PgBouncer and then straight to
PostgreSQL (same script, same duration), while one psql session on the database host counts
PostgreSQL's backends of the benchmark user every 0.2 s. It prints TPS, average latency, failed
transactions and the most server connections each run used, and the PgBouncer / direct TPS ratio.
The containers are removed at the end (unless --keep). Exit status 1 when a run fails.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LAB_DIR = ROOT / "tests" / "lab"
DB, PGBOUNCER, CLIENT = "bench-pgb-db", "bench-pgb-pgbouncer", "bench-pgb-client"
HOSTS = (DB, PGBOUNCER, CLIENT)
# Lab-only values (a real inventory keeps secrets in vault).
APP_PASSWORD = "bench-app-password"  # noqa: S105
ADMIN_PASSWORD = "bench-admin-password"  # noqa: S105
SALT_SEED = "bench-scram-salt-seed"

SAMPLER = r"""
psql -X -A -t -q > /tmp/bench-samples 2>/dev/null <<'SQL' &
SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend' \watch 0.2
SQL
echo $! > /tmp/bench-sampler.pid
wait
"""


def run(argv, check=True, **kwargs):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if check and proc.returncode != 0:
        sys.exit("command failed (%d): %s\n%s%s" % (proc.returncode, " ".join(argv), proc.stdout, proc.stderr))
    return proc


def docker_exec(container, script, user=None, env=None, check=True):
    argv = ["docker", "exec", "-w", "/"]
    if user:
        argv += ["-u", user]
    for key, value in (env or {}).items():
        argv += ["-e", "%s=%s" % (key, value)]
    return run(argv + [container, "bash", "-c", script], check=check)


def inventory(max_connections):
    group_vars = {
        "ansible_connection": "community.docker.docker",
        "ansible_user": "root",
        "lab_app_password": APP_PASSWORD,
        "lab_scram_salt_seed": SALT_SEED,
    }
    return {
        "all": {
            "vars": group_vars,
            "children": {
                "postgresql": {
                    "hosts": {DB: None},
                    "vars": {
                        "lab_pg_max_connections": max_connections,
                        "lab_pg_database": "appdb",
                        "lab_pg_user": "app",
                        # The verifier the role computes, so PgBouncer's SCRAM pass-through works.
                        "lab_pg_password": "{{ lab_app_password | ywmessaging.scaling.scram_sha256_verifier("
                        "'app', salt_seed=lab_scram_salt_seed) }}",
                    },
                },
                "pgbouncer": {
                    "hosts": {PGBOUNCER: None},
                    "vars": {
                        "pgbouncer_databases": [{"name": "appdb", "host": DB, "port": 5432}],
                        "pgbouncer_users": [
                            {"name": "app", "password": "{{ lab_app_password }}"},
                            {"name": "bench_admin", "password": ADMIN_PASSWORD},
                        ],
                        "pgbouncer_admin_users": ["bench_admin"],
                        "pgbouncer_scram_salt_seed": "{{ lab_scram_salt_seed }}",
                        "pgbouncer_max_client_conn": 1100,
                        "pgbouncer_postgresql_max_connections": max_connections,
                    },
                },
                "bench_client": {"hosts": {CLIENT: None}},
            },
        }
    }


def playbook(scale):
    platforms = [{"name": name, "release": "bookworm"} for name in HOSTS]
    return [
        {
            "name": "Start the benchmark's lab hosts",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {
                "__lab_dir": str(LAB_DIR),
                "__lab": "{{ lookup('ansible.builtin.file', __lab_dir ~ '/lab.json') | from_json }}",
                "__lab_group": "bench-pgb",
                "__lab_platforms": platforms,
            },
            "tasks": [{"ansible.builtin.include_tasks": str(LAB_DIR / "tasks" / "start-hosts.yml")}],
        },
        {"ansible.builtin.import_playbook": str(LAB_DIR / "playbooks" / "prepare-hosts.yml")},
        {"ansible.builtin.import_playbook": str(LAB_DIR / "playbooks" / "postgresql.yml")},
        {
            "name": "pgbench tables",
            "hosts": "postgresql",
            "gather_facts": False,
            "tasks": [
                {
                    "ansible.builtin.command": "pgbench -i -q -s %d -h 127.0.0.1 -U app appdb" % scale,
                    "environment": {"PGPASSWORD": "{{ lab_app_password }}"},
                    "changed_when": True,
                }
            ],
        },
        {
            "name": "pgbench on the client host (PostgreSQL's package, without a cluster)",
            "hosts": "bench_client",
            "gather_facts": False,
            "tasks": [
                {
                    "ansible.builtin.file": {
                        "path": "/etc/postgresql-common/createcluster.d",
                        "state": "directory",
                        "mode": "0755",
                    }
                },
                {
                    "ansible.builtin.copy": {
                        "dest": "/etc/postgresql-common/createcluster.d/no-main-cluster.conf",
                        "content": "create_main_cluster = false\n",
                        "mode": "0644",
                    }
                },
                {"ansible.builtin.apt": {"name": ["postgresql", "postgresql-contrib"], "state": "present"}},
            ],
        },
        {
            "name": "PgBouncer",
            "hosts": "pgbouncer",
            "gather_facts": False,
            "roles": [{"role": "ywmessaging.scaling.pgbouncer"}],
        },
    ]


def setup(args, workdir):
    (workdir / "inventory.json").write_text(json.dumps(inventory(args.max_connections)))
    (workdir / "bench.yml").write_text(json.dumps(playbook(args.scale)))
    env = dict(
        os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections")
    )
    started = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(workdir / "inventory.json"), str(workdir / "bench.yml")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit("setting up the benchmark lab failed:\n%s%s" % (proc.stdout[-6000:], proc.stderr[-3000:]))
    print("lab ready in %.0f s" % (time.monotonic() - started), flush=True)


def destroy():
    run(["docker", "rm", "-f", "-v"] + list(HOSTS), check=False)


def settle():
    """PgBouncer closes its server connections; wait until PostgreSQL has no backend of the app user."""
    for command in ("PAUSE appdb", "RESUME appdb"):
        docker_exec(
            CLIENT,
            "psql -X -q -h %s -p 6432 -U bench_admin -d pgbouncer -c '%s'" % (PGBOUNCER, command),
            env={"PGPASSWORD": ADMIN_PASSWORD},
        )
    sql = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'"
    for _attempt in range(120):
        if docker_exec(DB, 'psql -X -A -t -c "%s"' % sql, user="postgres").stdout.strip() == "0":
            return
        time.sleep(0.5)
    sys.exit("PostgreSQL kept backends of the app user after PAUSE")


def pgbench(target, port, clients, seconds, builtin, jobs):
    settle()
    sampler = subprocess.Popen(
        ["docker", "exec", "-u", "postgres", "-w", "/", DB, "bash", "-c", SAMPLER],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    try:
        out = docker_exec(
            CLIENT,
            "pgbench --no-vacuum --builtin=%s --client=%d --jobs=%d --time=%d --host=%s --port=%d --username=app appdb"
            % (builtin, clients, jobs, seconds, target, port),
            env={"PGPASSWORD": APP_PASSWORD},
            check=False,
        )
    finally:
        docker_exec(DB, "kill $(cat /tmp/bench-sampler.pid)", user="postgres", check=False)
        sampler.wait(timeout=30)
    samples = docker_exec(DB, "cat /tmp/bench-samples", user="postgres").stdout.split()
    text = out.stdout + out.stderr

    def number(pattern):
        match = re.search(pattern, text, re.MULTILINE)
        return float(match.group(1)) if match else None

    return {
        "ok": out.returncode == 0,
        "tps": number(r"^tps = ([0-9.]+)"),
        "latency_ms": number(r"^latency average = ([0-9.]+) ms"),
        "failed": number(r"^number of failed transactions: (\d+)"),
        "processed": number(r"^number of transactions actually processed: (\d+)"),
        "server_connections": max(int(s) for s in samples) if samples else None,
        "output": text,
    }


def fmt(value, pattern):
    return "-" if value is None else pattern % value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--clients", default="50,300,1000", help="comma-separated client counts (default 50,300,1000)")
    parser.add_argument("--seconds", type=int, default=20, help="duration of each pgbench run (default 20)")
    parser.add_argument("--builtin", default="select-only", help="pgbench built-in script (default select-only)")
    parser.add_argument("--jobs", type=int, default=4, help="pgbench threads (default 4)")
    parser.add_argument("--scale", type=int, default=10, help="pgbench scale factor (default 10)")
    parser.add_argument("--max-connections", type=int, default=1100, help="PostgreSQL max_connections (default 1100)")
    parser.add_argument("--keep", action="store_true", help="leave the containers running")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.clients.split(",")]
    if max(counts) + 10 > args.max_connections:
        parser.error("--max-connections must exceed the largest client count by at least 10")

    results = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-pgb-") as tmp:
        try:
            setup(args, Path(tmp))
            for clients in counts:
                for via, target, port in (("pgbouncer", PGBOUNCER, 6432), ("direct", DB, 5432)):
                    result = pgbench(target, port, clients, args.seconds, args.builtin, args.jobs)
                    result.update(clients=clients, via=via)
                    results.append(result)
                    print(
                        "%5d clients %-9s %s tps, %s ms, %s server connections%s"
                        % (
                            clients,
                            via,
                            fmt(result["tps"], "%.0f"),
                            fmt(result["latency_ms"], "%.1f"),
                            fmt(result["server_connections"], "%d"),
                            "" if result["ok"] else "  (pgbench failed)",
                        ),
                        flush=True,
                    )
                    if not result["ok"] or result["failed"]:
                        failed = True
                        print(result["output"][-2000:], file=sys.stderr)
        finally:
            if not args.keep:
                destroy()

    print()
    print(
        "pgbench --builtin=%s, %d s per run, scale %d, PostgreSQL max_connections %d, PgBouncer default_pool_size 30"
        % (args.builtin, args.seconds, args.scale, args.max_connections)
    )
    print(
        "| clients | PgBouncer tps | direct tps | PgBouncer / direct | PgBouncer latency ms | direct latency ms "
        "| server conns via PgBouncer | server conns direct | failed (PgBouncer / direct) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for clients in counts:
        pgb = next(r for r in results if r["clients"] == clients and r["via"] == "pgbouncer")
        direct = next(r for r in results if r["clients"] == clients and r["via"] == "direct")
        ratio = pgb["tps"] / direct["tps"] if pgb["tps"] and direct["tps"] else None
        print(
            "| %d | %s | %s | %s | %s | %s | %s | %s | %s / %s |"
            % (
                clients,
                fmt(pgb["tps"], "%.0f"),
                fmt(direct["tps"], "%.0f"),
                fmt(ratio, "%.2fx"),
                fmt(pgb["latency_ms"], "%.1f"),
                fmt(direct["latency_ms"], "%.1f"),
                fmt(pgb["server_connections"], "%d"),
                fmt(direct["server_connections"], "%d"),
                fmt(pgb["failed"], "%d"),
                fmt(direct["failed"], "%d"),
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
