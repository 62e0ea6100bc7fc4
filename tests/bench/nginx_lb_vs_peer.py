# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: how long ywmessaging.scaling.nginx_lb takes to converge a fresh host, and to re-run on a
converged one, next to a peer role doing the same job (geerlingguy.nginx by default).

Same job for both: nginx from Debian 12's packages, an upstream of three servers (least_conn,
max_fails/fail_timeout, keepalive) and a plain-HTTP virtual host that proxies to it. Each round starts
two fresh lab hosts (the lab's own Debian 12 image, systemd as PID 1, the lab's package cache), one
per role, and runs on each: a fresh converge, then `--runs-noop` re-runs, which must change nothing.
Rounds alternate which role goes first, so a machine getting busier or quieter shows on both.
Printed: the median of each figure per role, side by side, and ours / peer as a ratio.

The peer role is never part of this repository: pass its path. Where Galaxy is reachable:

    ansible-galaxy role install -p /tmp/peer geerlingguy.nginx
    .venv/bin/python tests/bench/nginx_lb_vs_peer.py --peer /tmp/peer/geerlingguy.nginx [--rounds 3]

Needs the lab's image and network (`python3 tests/lab/labctl.py prepare`, which `./run molecule`
does too). Uses containers named ywbench-*, removed at the end; talks only to the lab network.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAB = json.loads((ROOT / "tests" / "lab" / "lab.json").read_text())
UPSTREAM_PORTS = (3001, 3002, 3003)

OURS = """---
- name: nginx_lb, the same job as the peer's
  hosts: all
  gather_facts: false
  roles:
    - role: ywmessaging.scaling.nginx_lb
      vars:
        nginx_lb_server_name: api.bench.test
        nginx_lb_tls_mode: "off"
        nginx_lb_upstream_servers: %(servers)s
"""

PEER = """---
- name: The peer role, the same job as ours
  hosts: all
  gather_facts: true
  roles:
    - role: %(peer)s
      vars:
        nginx_remove_default_vhost: true
        nginx_upstreams:
          - name: backend
            strategy: least_conn
            keepalive: 32
            servers: %(servers)s
        nginx_vhosts:
          - listen: "80"
            server_name: api.bench.test
            filename: api.bench.test.conf
            extra_parameters: |
              location / {
                  proxy_pass http://backend;
                  proxy_http_version 1.1;
                  proxy_set_header Connection "";
                  proxy_set_header Host $host;
                  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                  proxy_next_upstream error timeout;
              }
"""


def docker(*argv, check=True, timeout=300):
    proc = subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        sys.exit(f"docker {' '.join(argv[:3])} ... failed: {proc.stderr.strip()}")
    return proc


def start_host(name, release):
    """A fresh lab host: the options that boot systemd in a container come from tests/lab/lab.json."""
    docker("rm", "-f", "-v", name, check=False)
    c = LAB["container"]
    argv = ["run", "-d", "--name", name, "--hostname", name, "--network", LAB["network"],
            "--label", f"ywlab.host={name}", "--label", "ywlab.group=bench",
            "--cgroupns", c["cgroupns_mode"], "--stop-signal", c["stop_signal"]]  # fmt: skip
    for cap in c["capabilities"]:
        argv += ["--cap-add", cap]
    for opt in c["security_opts"]:
        argv += ["--security-opt", opt]
    for volume in c["volumes"]:
        argv += ["-v", volume]
    for path in c["tmpfs"]:
        argv += ["--tmpfs", path]
    for key, value in c["env"].items():
        argv += ["-e", f"{key}={value}"]
    docker(*argv, f"{LAB['image_repo']}:{release}", c["command"])
    for _second in range(60):
        state = docker("exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
        if state in ("running", "degraded"):
            break
        time.sleep(1)
    else:
        sys.exit(f"{name}: systemd did not finish booting")
    # As a fresh server: package lists present (the image has none; a cloud image's first boot fetches
    # them), packages through the lab's cache as on every lab host. Not timed.
    proxy = f'Acquire::http::Proxy "http://{LAB["gateway"]}:{LAB["apt_cache_port"]}";'
    docker("exec", name, "sh", "-c", f"echo '{proxy}' > /etc/apt/apt.conf.d/01ywlab-proxy")
    docker("exec", name, "timeout", "180", "apt-get", "update", "--quiet")


def converge(workdir, playbook, host):
    inventory = workdir / f"{host}.yml"
    hostvars = {"ansible_host": host, "ansible_connection": "community.docker.docker"}
    inventory.write_text(json.dumps({"all": {"hosts": {host: hostvars}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    started = time.monotonic()
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), str(playbook)],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)  # fmt: skip
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"{playbook.name} on {host} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    recap = [line for line in proc.stdout.splitlines() if line.startswith(host + " ")]
    changed = int(recap[-1].split("changed=")[1].split()[0]) if recap else -1
    return seconds, changed


def serves(host):
    """nginx answers on port 80 with the bench's virtual host (the backends are absent: a 502 is fine)."""
    proc = docker("exec", host, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: api.bench.test",
                  "http://127.0.0.1/", check=False)  # fmt: skip
    return proc.stdout.strip() in ("502", "503", "504")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--peer", required=True, help="path of the peer role (e.g. geerlingguy.nginx)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs-noop", type=int, default=2, help="no-op re-runs per fresh converge")
    parser.add_argument("--release", default="bookworm", choices=LAB["releases"])
    args = parser.parse_args()
    peer = Path(args.peer).resolve()
    if not (peer / "tasks" / "main.yml").is_file():
        sys.exit(f"--peer {peer}: not a role (no tasks/main.yml)")

    figures = {"ours": {"fresh": [], "noop": []}, "peer": {"fresh": [], "noop": []}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ours = [{"address": "127.0.0.1", "port": p} for p in UPSTREAM_PORTS]
        (work / "ours.yml").write_text(OURS % {"servers": json.dumps(ours)})
        servers = [f"127.0.0.1:{p} max_fails=3 fail_timeout=10s" for p in UPSTREAM_PORTS]
        (work / "peer.yml").write_text(PEER % {"peer": peer, "servers": json.dumps(servers)})
        try:
            for n in range(args.rounds):
                order = ("ours", "peer") if n % 2 == 0 else ("peer", "ours")
                for who in order:
                    host = f"ywbench-{who}"
                    start_host(host, args.release)
                    seconds, _changed = converge(work, work / f"{who}.yml", host)
                    if not serves(host):
                        sys.exit(f"{who}: nginx does not serve the bench's virtual host after the converge")
                    figures[who]["fresh"].append(seconds)
                    for _run in range(args.runs_noop):
                        seconds, changed = converge(work, work / f"{who}.yml", host)
                        if changed != 0:
                            sys.exit(f"{who}: a re-run on the converged host changed {changed} task(s)")
                        figures[who]["noop"].append(seconds)
                    print(f"round {n + 1} {who}: fresh {figures[who]['fresh'][-1]:.1f} s, "
                          f"no-op {', '.join(f'{s:.1f}' for s in figures[who]['noop'][-args.runs_noop:])} s",
                          flush=True)  # fmt: skip
        finally:
            for who in figures:
                docker("rm", "-f", "-v", f"ywbench-{who}", check=False)

    print(f"\n{args.rounds} round(s), Debian {args.release}, upstream of {len(UPSTREAM_PORTS)}, median seconds")
    print(f"{'run':<10} {'nginx_lb':>9} {peer.name:>20} {'ours / peer':>12}")
    for kind in ("fresh", "noop"):
        ours, theirs = statistics.median(figures["ours"][kind]), statistics.median(figures["peer"][kind])
        print(f"{kind:<10} {ours:>9.1f} {theirs:>20.1f} {ours / theirs:>11.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
