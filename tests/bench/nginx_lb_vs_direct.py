# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: wrk through nginx_lb (three backends) against wrk straight at one backend.

Does the load balancer buy throughput, and what does it cost in latency? One run measures, at the
same concurrency and for the same request (a few ms of real work on the backend):

  direct        wrk -> one backend (plain HTTP)
  lb keepalive  wrk -> nginx_lb -> 3 backends, HTTP/1.1 keepalive to the backends (plain HTTP)
  lb no-ka      the same with nginx_lb_keepalive=0 (a new backend connection per request)
  lb tls        the scenario's own configuration: HTTPS to nginx, keepalive to the backends

and prints req/s and p50/p95/p99 for each, with the ratios to `direct`; `direct` is measured
again at the end, so a machine that got busier or quieter during the run shows.

It uses the hosts of the Molecule scenario `nginx_lb` (bring them up first with
`.venv/bin/molecule converge -s nginx_lb`), reconfigures the load balancer with the role itself
(`-e nginx_lb_tls_mode=off`, `-e nginx_lb_keepalive=0`) and puts the scenario's configuration
back at the end. wrk runs on the load balancer host in every case, so the client is placed the
same way for all four. Everything stays on the lab network of this machine.

    .venv/bin/python tests/bench/nginx_lb_vs_direct.py [--duration 10] [--connections 32]
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LB = "nginx_lb-lb"
BACKEND = "nginx_lb-backend-1"
BACKEND_PORT = 3000
WRK_REPORT = "/usr/local/share/wrk_report.lua"
PLAYBOOK = """---
- name: Reconfigure the load balancer for the benchmark
  hosts: nginx_lb-lb
  gather_facts: false
  tasks:
    - name: Apply the role
      ansible.builtin.include_role:
        name: ywmessaging.scaling.nginx_lb
"""


def docker(*argv, check=True, timeout=300):
    proc = subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        sys.exit(f"docker {' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc


def find_inventory():
    found = sorted(glob.glob(os.path.expanduser("~/.ansible/tmp/molecule.*.nginx_lb/inventory/ansible_inventory.yml")))
    running = docker("ps", "--filter", f"name=^{LB}$", "--format", "{{.Names}}", check=False).stdout.strip()
    if not found or running != LB:
        sys.exit("the nginx_lb scenario is not up: run `.venv/bin/molecule converge -s nginx_lb` first")
    return found[-1]


def apply_role(inventory, playbook, *extra):
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
        ANSIBLE_PIPELINING="True",
    )
    args = ["ansible-playbook", "-i", inventory, playbook]
    for var in extra:
        args += ["-e", var]
    started = time.monotonic()
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / args[0]), *args[1:]], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"reconfiguring the load balancer failed ({' '.join(extra) or 'scenario defaults'}):\n{proc.stdout}")
    print(f"  configured: {' '.join(extra) or 'scenario defaults'} ({time.monotonic() - started:.0f} s)", flush=True)


def wrk(url, duration, connections, threads):
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "-s", WRK_REPORT, url]
    out = docker("exec", LB, *args, timeout=duration + 60).stdout
    for line in out.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line[len("WRK_JSON ") :])
    sys.exit(f"wrk printed no figures:\n{out}")


def measure(label, url, args):
    wrk(url, 2, args.connections, args.threads)  # warm up: connections, caches, thread pools
    figures = wrk(url, args.duration, args.connections, args.threads)
    errors = sum(figures["errors"].values())
    row = {
        "label": label,
        "rps": figures["requests"] / (figures["duration_us"] / 1e6),
        "p50": figures["latency_us"]["p50"] / 1000,
        "p95": figures["latency_us"]["p95"] / 1000,
        "p99": figures["latency_us"]["p99"] / 1000,
        "requests": figures["requests"],
        "errors": errors,
    }
    print(f"  {label}: {row['rps']:.0f} req/s, p99 {row['p99']:.1f} ms, {errors} errors", flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections, the same for all (32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--cpu-ms", type=float, default=2, help="CPU work per request on the backend (2 ms)")
    parser.add_argument("--io-ms", type=float, default=3, help="waiting per request on the backend (3 ms)")
    args = parser.parse_args()

    inventory = find_inventory()
    path = f"/work?cpu_ms={args.cpu_ms:g}&io_ms={args.io_ms:g}"
    backend_ip = docker("exec", LB, "getent", "ahostsv4", BACKEND).stdout.split()[0]
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        playbook = os.path.join(tmp, "bench-lb.yml")
        with open(playbook, "w", encoding="utf-8") as fh:
            fh.write(PLAYBOOK)
        try:
            print(f"{args.connections} connections, {args.duration} s per run, request {path}", flush=True)
            rows.append(measure("direct, one backend", f"http://{backend_ip}:{BACKEND_PORT}{path}", args))
            apply_role(inventory, playbook, "nginx_lb_tls_mode=off")
            rows.append(measure("nginx_lb, 3 backends, keepalive", f"http://127.0.0.1{path}", args))
            apply_role(inventory, playbook, "nginx_lb_tls_mode=off", "nginx_lb_keepalive=0")
            rows.append(measure("nginx_lb, 3 backends, no keepalive", f"http://127.0.0.1{path}", args))
        finally:
            apply_role(inventory, playbook)  # the scenario's configuration again (HTTPS, keepalive)
        rows.append(measure("nginx_lb, 3 backends, keepalive, HTTPS", f"https://127.0.0.1{path}", args))
        # The machine may have got busier or quieter meanwhile: the first figure, measured again.
        rows.append(measure("direct, one backend (again)", f"http://{backend_ip}:{BACKEND_PORT}{path}", args))
    load_after = os.getloadavg()

    direct = rows[0]
    print()
    print("| path | req/s | p50 ms | p95 ms | p99 ms | errors | req/s vs direct | p99 vs direct |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['label']} | {row['rps']:.0f} | {row['p50']:.1f} | {row['p95']:.1f} | {row['p99']:.1f} "
            f"| {row['errors']} | {row['rps'] / direct['rps']:.2f}x | {row['p99'] / direct['p99']:.2f}x |"
        )
    print(
        f"\nload average (1 min) before {load_before[0]:.1f}, after {load_after[0]:.1f}; "
        f"CPUs on this machine: {os.cpu_count()}"
    )
    return 1 if any(row["errors"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
