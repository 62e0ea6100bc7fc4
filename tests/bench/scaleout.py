# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: Phase 2 (the balancer to every backend) against Phase 1 (one backend straight), as
loadtest.yml measures it, on the main lab, several rounds in one run.

Each round gives every backend container tests/lab/lab.json's scaleout quota (a share of a core,
so that each stands in for a server of its own), runs

    ansible-playbook loadtest.yml -i inventories/lab -e loadtest_compare=true  (smoke profile, 5 s)

and reads the report it wrote: the most one backend serves straight, the most the balancer serves
with the same connections per backend, their ratio, and PgBouncer's client / server connections at
full load. It prints the rounds side by side and their median, lifts the quota, and exits non-zero
when a round failed to measure, the median ratio is under --min (default 2.5, the lab's goal; the
runbook promises 1.5-3x) or PgBouncer's median client connections at full load are under
--min-clients (default 300, the runbook's "pooling 30 connections to 300+").

Needs the main lab converged (`./run main`). Run on a quiet machine: the balancer, PgBouncer,
PostgreSQL and the load generator share the cores the backends do not get.

    .venv/bin/python tests/bench/scaleout.py [--rounds 3] [--seconds 15] [--min 2.5] [--min-clients 300]
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventories" / "lab"


def lab():
    hosts = yaml.safe_load((INVENTORY / "hosts.yml").read_text())["all"]["children"]
    allvars = yaml.safe_load((INVENTORY / "group_vars" / "all.yml").read_text())
    scaleout = json.loads((ROOT / "tests" / "lab" / "lab.json").read_text())["scaleout"]
    group = hosts[scaleout["group"]]["hosts"]
    lb = next(iter(hosts["lb"]["hosts"].values()))
    return [hv["ansible_host"] for hv in group.values()], scaleout["cpus"], allvars["api_domain"], lb["lab_address"]


def quota(containers, cpus):
    subprocess.run(["docker", "update", "--cpus", str(cpus), *containers], check=True, capture_output=True)


def one_round(domain, lb_address, seconds):
    before = set(glob.glob(str(ROOT / "reports" / "deploy-*.json")))
    argv = [
        str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(INVENTORY), str(ROOT / "loadtest.yml"),
        "-e", f"loadtest_target={domain}", "-e", "loadtest_profile=smoke", "-e", "loadtest_duration=5",
        "-e", "loadtest_compare=true", "-e", f"loadtest_compare_seconds={seconds}",
        "-e", f"drill_connect_address={lb_address}", "-e", "drill_validate_certs=false",
    ]  # fmt: skip
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    new = sorted(set(glob.glob(str(ROOT / "reports" / "deploy-*.json"))) - before)
    if not new:
        sys.exit(f"loadtest.yml wrote no report (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    compare = json.loads(Path(new[-1]).read_text())["context"]["loadtest"]["compare"]
    if not compare or compare.get("ratio") is None:
        sys.exit(f"loadtest.yml measured no comparison (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    return compare


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=15, help="each closed-loop run (loadtest_compare_seconds)")
    parser.add_argument("--min", type=float, default=2.5, help="the median ratio must reach this")
    parser.add_argument("--min-clients", type=int, default=300, help="PgBouncer's median clients at full load")
    args = parser.parse_args()
    containers, cpus, domain, lb_address = lab()
    rounds = []
    quota(containers, cpus)
    try:
        for n in range(args.rounds):
            compare = one_round(domain, lb_address, args.seconds)
            rounds.append(compare)
            pool = compare.get("pgbouncer_peak") or {}
            print(
                f"round {n + 1}: one backend {compare['phase1_rate']:8.1f} req/s | balancer, {compare['backends']} "
                f"backends {compare['phase2_rate']:8.1f} req/s | {compare['ratio']:.2f}x | PgBouncer at full load "
                f"{pool.get('clients', 0)} clients on {pool.get('server_connections', 0)} server connections",
                flush=True,
            )
    finally:
        quota(containers, os.cpu_count() or 1)  # `--cpus 0` would leave the quota in place
    ratio = statistics.median(r["ratio"] for r in rounds)
    clients = statistics.median((r.get("pgbouncer_peak") or {}).get("clients", 0) for r in rounds)
    print(
        f"\nmedian of {len(rounds)}: one backend {statistics.median(r['phase1_rate'] for r in rounds):.1f} req/s, "
        f"balancer {statistics.median(r['phase2_rate'] for r in rounds):.1f} req/s, Phase 2 / Phase 1 = {ratio:.2f}x "
        f"(each backend held to {cpus} of a core; goal {args.min}x); PgBouncer at full load {clients:g} clients "
        f"(goal {args.min_clients})"
    )
    return 0 if ratio >= args.min and clients >= args.min_clients else 1


if __name__ == "__main__":
    sys.exit(main())
