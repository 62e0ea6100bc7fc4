# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: one ywmessaging.scaling.upstream_health task vs an ansible.builtin.uri loop.

Not a test: run it by hand from the repository root,

    .venv/bin/python tests/bench/upstream_health_vs_uri.py [--endpoints 50] [--delay-ms 200] [--rounds 1]

It starts N loopback HTTP endpoints (127.0.0.1, ephemeral ports, in-process threads) that
each answer {"status": "ok"} after --delay-ms, writes three playbooks against localhost and
runs them with the venv's ansible-playbook:

  baseline         one debug task (what ansible-playbook costs by itself)
  upstream_health  one task checking all N endpoints (status 200 + json status == ok)
  uri loop         ansible.builtin.uri looped over the N URLs with the same checks (failed_when)

and prints the wall time of each, side by side, and the ratio. Every endpoint must have been
requested exactly once per playbook run, or the script says so and exits non-zero.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    body = json.dumps({"status": "ok"}).encode()

    def log_message(self, *_args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        with self.server.lock:
            self.server.hits += 1
        time.sleep(self.server.delay)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


class SlowEndpoint(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, delay):
        ThreadingHTTPServer.__init__(self, (LOOPBACK, 0), _Handler)
        self.delay = delay
        self.hits = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self):
        return "http://%s:%d/health" % (LOOPBACK, self.server_address[1])


def playbooks(urls, max_workers):
    """The three playbooks, as JSON (which is YAML)."""

    def play(tasks):
        return [{"name": "bench", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]

    health_args = {
        "endpoints": [{"name": "ep%02d" % i, "url": url} for i, url in enumerate(urls)],
        "status_codes": [200],
        "json": {"status": "ok"},
    }
    if max_workers:
        health_args["max_workers"] = max_workers
    return {
        "baseline": play([{"name": "nothing", "ansible.builtin.debug": {"msg": "baseline"}}]),
        "upstream_health": play([{"name": "all endpoints", "ywmessaging.scaling.upstream_health": health_args}]),
        "uri loop": play(
            [
                {
                    "name": "each endpoint",
                    "ansible.builtin.uri": {"url": "{{ item }}", "status_code": [200], "return_content": True},
                    "register": "health",
                    "failed_when": "health.status != 200 or (health.json | default({})).status | default('') != 'ok'",
                    "loop": urls,
                    "loop_control": {"label": "{{ item }}"},
                }
            ]
        ),
    }


def run_playbook(path, workdir):
    interpreter = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    argv = [
        str(BIN / "ansible-playbook"),
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        "ansible_python_interpreter=%s" % interpreter,
        str(path),
    ]
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=str(ROOT), env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    (workdir / (path.stem + ".log")).write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit("%s failed (rc=%d):\n%s%s" % (path.name, proc.returncode, proc.stdout[-3000:], proc.stderr[-2000:]))
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--endpoints", type=int, default=50, help="number of loopback endpoints (default 50)")
    parser.add_argument("--delay-ms", type=int, default=200, help="each endpoint's response delay (default 200)")
    parser.add_argument("--rounds", type=int, default=1, help="run each playbook this many times; median shown")
    parser.add_argument("--max-workers", type=int, default=0, help="upstream_health max_workers (default: module's)")
    args = parser.parse_args()

    servers = [SlowEndpoint(args.delay_ms / 1000.0) for _index in range(args.endpoints)]
    urls = [s.url for s in servers]
    times = {}
    with tempfile.TemporaryDirectory(prefix="bench-upstream-health-") as tmp:
        workdir = Path(tmp)
        books = playbooks(urls, args.max_workers)
        paths = {}
        for name, content in books.items():
            paths[name] = workdir / (name.replace(" ", "_") + ".yml")
            paths[name].write_text(json.dumps(content, indent=2))
        for _round in range(args.rounds):
            for name in books:
                before = [s.hits for s in servers]
                times.setdefault(name, []).append(run_playbook(paths[name], workdir))
                per_endpoint = [s.hits - b for s, b in zip(servers, before)]
                want = 0 if name == "baseline" else 1
                if any(n != want for n in per_endpoint):
                    sys.exit("%s requested the endpoints %s times, expected %d each" % (name, per_endpoint, want))
    for server in servers:
        server.shutdown()
        server.server_close()

    median = dict((name, statistics.median(values)) for name, values in times.items())
    serial_floor = args.endpoints * args.delay_ms / 1000.0
    print(
        "%d loopback endpoints answering after %d ms; %d round%s; python %s"
        % (args.endpoints, args.delay_ms, args.rounds, "" if args.rounds == 1 else "s", sys.version.split()[0])
    )
    print("%-34s %10s %12s" % ("playbook", "wall s", "minus base"))
    rows = [
        ("baseline (1 debug task)", "baseline"),
        ("upstream_health (1 task, %d eps)" % args.endpoints, "upstream_health"),
        ("uri loop (%d items)" % args.endpoints, "uri loop"),
    ]
    for label, key in rows:
        print("%-34s %10.2f %12.2f" % (label, median[key], median[key] - median["baseline"]))
    print(
        "ratio uri loop / upstream_health:   %.1fx wall, %.1fx minus base"
        % (
            median["uri loop"] / median["upstream_health"],
            (median["uri loop"] - median["baseline"]) / max(1e-6, median["upstream_health"] - median["baseline"]),
        )
    )
    print("(serial floor for the loop: %d x %d ms = %.1f s)" % (args.endpoints, args.delay_ms, serial_floor))
    if args.rounds > 1:
        for name, values in times.items():
            print("  %-16s %s" % (name, " ".join("%.2f" % v for v in values)))


if __name__ == "__main__":
    main()
