# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: what an operator waits for on a converged stack, next to the fresh converge (issue #16).

On the lab that `./run main` brought up and converged (its site.yml report is the fresh converge):

  no-op         site.yml again, `--noop-runs` times: must change nothing
  check         site.yml --check --diff: must change nothing
  code rollback rollback.yml -e rollback_parts=code (3 backends, drained and health-gated)
  redeploy      site.yml after that rollback: the release goes back on every backend

Each is timed from the outside (wall clock of ansible-playbook, what an operator or AWX waits for)
and printed next to the fresh converge's time from its report, as a ratio, with the issue's goal.
The stack ends as it started (the redeploy puts the release back). Talks only to the lab network.

    ./run main                                    # once: the lab, converged
    .venv/bin/python tests/bench/fullstack_runs.py [--noop-runs 2]
"""

import argparse
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventories" / "lab"
GOALS = {"no-op": 30, "check": 30, "code rollback": 15}  # seconds, issue #16


def playbook(name, *extra):
    """ansible-playbook <name> on the lab; returns (seconds, changed per host, rc, output tail)."""
    argv = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(INVENTORY), str(ROOT / name), *extra]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    changed = {
        host: int(n) for host, n in re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", proc.stdout, flags=re.MULTILINE)
    }
    return seconds, changed, proc.returncode, proc.stdout[-3000:] + proc.stderr[-1000:]


def fresh_converge_seconds():
    """The total of the earliest site.yml report that converged the stack (./run main's)."""
    for path in sorted(glob.glob(str(ROOT / "reports" / "deploy-*.json"))):
        report = json.loads(Path(path).read_text())
        stages = [stage.get("stage") for stage in report.get("stages") or []]
        if report.get("kind") == "deploy" and "backends" in stages and report.get("total_seconds"):
            return float(report["total_seconds"]), path
    sys.exit("no site.yml report in reports/: run ./run main first")


def must(ok, what, tail):
    if not ok:
        sys.exit(f"{what}\n{tail}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--noop-runs", type=int, default=2)
    args = parser.parse_args()
    fresh, report = fresh_converge_seconds()
    rows = []

    noop = []
    for _run in range(args.noop_runs):
        seconds, changed, rc, tail = playbook("site.yml")
        must(rc == 0 and not any(changed.values()), f"the no-op site.yml changed {changed} (rc {rc})", tail)
        noop.append(seconds)
    rows.append(("no-op", statistics.median(noop), f"median of {len(noop)}"))

    seconds, changed, rc, tail = playbook("site.yml", "--check", "--diff")
    must(rc == 0 and not any(changed.values()), f"site.yml --check --diff changed {changed} (rc {rc})", tail)
    rows.append(("check", seconds, "--check --diff"))

    seconds, changed, rc, tail = playbook("rollback.yml", "-e", "rollback_parts=code")
    must(rc == 0 and any(changed.values()), f"the code rollback failed or changed nothing (rc {rc})", tail)
    rows.append(("code rollback", seconds, "rollback_parts=code"))

    seconds, changed, rc, tail = playbook("site.yml")
    must(rc == 0, f"site.yml after the rollback failed (rc {rc})", tail)
    rows.append(("redeploy", seconds, "site.yml after the code rollback"))

    print(f"\nfresh converge (./run main, {os.path.basename(report)}): {fresh:.1f} s\n")
    print(f"{'run':<15}{'seconds':>9}{'/ fresh':>9}{'goal (s)':>10}  what")
    for name, seconds, what in rows:
        goal = GOALS.get(name)
        print(f"{name:<15}{seconds:>9.1f}{seconds / fresh:>8.2f}x{(str(goal) if goal else '-'):>10}  {what}")


if __name__ == "__main__":
    main()
