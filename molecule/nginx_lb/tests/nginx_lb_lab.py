"""Helpers (not tests) for the nginx_lb scenario's tests: the balancers' access log, wrk, systemd's timestamps
and the upstream_health module. They drive the lab from the controller through molecule/_shared/labkit.py
(docker exec, ansible-playbook), so a test can drive load from the load balancer host while it stops a backend."""

import json
import os
import re
import shlex
import time
from pathlib import Path

import labkit
from testinfra.modules.ansible import AnsibleException

LB = "nginx_lb-lb"  # Debian 13; the drills and the benchmark go through this one
LBS = ["nginx_lb-lb", "nginx_lb-lb2"]
BACKENDS = {"nginx_lb-backend-1": 3000, "nginx_lb-backend-2": 3000, "nginx_lb-backend-3": 3001}
SERVER_NAME = "api.ywlab.test"
CA = "/etc/ssl/ywlab/ca.crt"
ACCESS_LOG = "/var/log/nginx/backend_access.log"
FAIL_TIMEOUT = 10  # role default nginx_lb_fail_timeout
TRIES = 3  # role default nginx_lb_proxy_next_upstream_tries
WRK_REPORT = "/usr/local/share/wrk_report.lua"

SCENARIO_DIR = Path(__file__).resolve().parents[1]

_LOG_LINE = re.compile(
    r'msec=(?P<msec>[0-9.]+) "(?P<method>\S+) (?P<uri>\S+)[^"]*" (?P<status>\d{3}) .*'
    r" upstream=(?P<upstream>.*?) upstream_status=(?P<upstream_status>.*?) request_time=(?P<request_time>[0-9.]+)"
)


def address_of(name):
    """ip:port of a backend as nginx reports it in $upstream_addr."""
    ip = labkit.docker_exec(LB, f"getent ahostsv4 {name} | head -n1").stdout.split()[0]
    return f"{ip}:{BACKENDS[name]}"


def master_pid(lb=LB):
    return labkit.docker_exec(lb, "cat /run/nginx.pid").stdout.strip()


def log_size(lb=LB):
    return int(labkit.docker_exec(lb, f"stat -c %s {ACCESS_LOG}").stdout.strip())


def parse_log(text):
    records = []
    for line in text.splitlines():
        match = _LOG_LINE.search(line)
        if not match:
            continue
        hops = [h for h in re.split(r"\s*,\s*|\s+:\s+", match["upstream"].strip()) if h and h != "-"]
        records.append(
            {
                "msec": float(match["msec"]),
                "method": match["method"],
                "uri": match["uri"],
                "status": int(match["status"]),
                "hops": hops,
                "served_by": hops[-1] if hops else None,
                "tried": hops[:-1],
                "upstream_status": match["upstream_status"],
                "request_time": float(match["request_time"]),
            }
        )
    return records


def read_log(offset, lb=LB):
    """Access-log records written after byte offset: msec, status, every upstream tried, the server."""
    return parse_log(labkit.docker_exec(lb, f"tail -c +{offset + 1} {ACCESS_LOG}", timeout=60).stdout)


class LogFollower:
    """Reads the access log incrementally from where a drill started (complete lines only)."""

    def __init__(self, lb=LB):
        self.lb = lb
        self.offset = log_size(lb)
        self.records = []

    def poll(self):
        text = labkit.docker_exec(self.lb, f"tail -c +{self.offset + 1} {ACCESS_LOG}", timeout=60).stdout
        complete = text[: text.rfind("\n") + 1]
        self.offset += len(complete.encode())
        new = parse_log(complete)
        self.records.extend(new)
        return new


def systemd_times(container, unit, *properties):
    """Wall-clock times of systemd's *TimestampMonotonic properties (lab hosts share the kernel's clocks)."""
    argv = ["systemctl", "show", unit, *(f"--property={p}TimestampMonotonic" for p in properties)]
    out = labkit.docker_exec(container, argv)
    values = dict(line.split("=", 1) for line in out.stdout.split())
    offset = time.time() - time.monotonic()
    return {p: int(values[f"{p}TimestampMonotonic"]) / 1e6 + offset for p in properties}


class Wrk:
    """wrk running on a lab host until stopped (SIGINT by pid: wrk then prints its results)."""

    def __init__(self, url, connections=8, threads=2, headers=(), host=LB, max_seconds=300):
        self.host = host
        self.pidfile = f"/run/wrk-{os.getpid()}-{int(time.time() * 1000)}.pid"  # in the lab container
        args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max_seconds}s", "-s", WRK_REPORT]
        for header in headers:
            args += ["-H", header]
        args.append(url)
        script = f"echo $$ > {self.pidfile}; exec {shlex.join(args)}"
        self.proc = labkit.docker_popen(host, script)
        self.started = time.time()
        deadline = time.time() + 10
        while labkit.docker_exec(host, f"test -s {self.pidfile}", check=False).returncode != 0:
            assert time.time() < deadline, "wrk did not start"
            time.sleep(0.2)

    def stop(self):
        """Stop wrk and return its figures (WRK_JSON from files/wrk_report.lua)."""
        self.stop_at = time.time()  # requests cut off by the stop end after this (nginx logs 499)
        labkit.docker_exec(self.host, f"kill -INT $(cat {self.pidfile}); rm -f {self.pidfile}", check=False)
        out, err = self.proc.communicate(timeout=60)
        for line in out.splitlines():
            if line.startswith("WRK_JSON "):
                return json.loads(line[len("WRK_JSON ") :])
        raise AssertionError(f"wrk printed no figures:\n{out}\n{err}")

    def records(self, log, path="/work"):
        """The access-log records of wrk's requests that ended before wrk was told to stop."""
        return [r for r in log.records if r["uri"].startswith(path) and r["msec"] < self.stop_at]


def failed_requests(figures):
    errors = figures["errors"]
    return errors["connect"] + errors["read"] + errors["write"] + errors["timeout"] + errors["status"]


def run_playbook(playbook, *args):
    """One of this scenario's playbooks with Molecule's inventory, from the scenario directory: a labkit.Run.
    Results are one JSON line each, so a test can read a failed task's message whole (not folded)."""
    env = labkit.ansible_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    return labkit.play(playbook, *args, cwd=SCENARIO_DIR, timeout=600, env=env)


def upstream_health(host, **args):
    """Run ywmessaging.scaling.upstream_health on a lab host; fails the test with its message."""
    try:
        return host.ansible("ywmessaging.scaling.upstream_health", json.dumps(args), check=False)
    except AnsibleException as exc:
        raise AssertionError(exc.result.get("msg", exc.result)) from None
