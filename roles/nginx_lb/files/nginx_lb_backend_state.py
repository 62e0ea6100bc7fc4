# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Shipped by the ywmessaging.scaling.nginx_lb role and run on the load balancer by
# ansible.builtin.script (tasks/backend_state.yml); nothing is installed. Standard library only.
"""Drain or undrain one upstream server on this load balancer, atomically.

    nginx_lb_backend_state.py drain|undrain NAME [--check] [--unknown fail|skip] [--wait SECONDS] ...

Several backends of one rolling batch drain at the same time, each from its own Ansible worker, all
on the same load balancer. Read upstream.conf, check that another server stays in rotation, mark the
line, test the whole configuration with `nginx -t`, put it live, reload: done by separate Ansible
tasks, two drains interleave and one `down` mark is lost, or both pass the "another one stays"
check and every backend goes out at once. Here the whole read-check-modify-test-reload runs under
one exclusive flock(2) per load balancer, so concurrent calls are applied one after the other, each
on the result of the previous one. The lock dies with the process: a killed run leaves no stale lock.

The drained list (read by a full run of the role, so it keeps a drained backend out) is written
before the live file when draining and after the reload when undraining: a run that stops half-way
errs on the side of keeping the backend out, and the next undrain heals it. Undrain of a server
that is in rotation and not listed is a read under the lock and nothing else (no nginx -t, no
reload), so it is cheap enough to call at the end of every backend run.

After a drain it waits, with the lock released, until every nginx worker that existed before the
reload has exited: then no request is in flight to the drained backend.

Prints one JSON object: changed, msg, backend, state (down / up / unknown / unconfigured), in_rotation,
down; exit status 0, or 1 with failed=true and msg saying why (refusal, unknown server, nginx -t).
"""

import argparse
import errno
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time


class Refused(Exception):
    """The request cannot be applied; the message says why. Nothing was changed."""


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["drain", "undrain"])
    p.add_argument("name")
    p.add_argument("--check", action="store_true", help="report what would change, change nothing")
    p.add_argument("--unknown", choices=["fail", "skip"], default="fail")
    p.add_argument("--wait", type=float, default=60.0, help="drain: seconds for old workers to exit")
    p.add_argument("--lock-file", default="/run/lock/nginx_lb-backend-state.lock")
    p.add_argument("--lock-timeout", type=float, default=120.0)
    p.add_argument("--conf-dir", default="/etc/nginx")
    p.add_argument("--include-dir", default="ywmessaging")
    p.add_argument("--staging-dir", default="/etc/nginx/ywmessaging-staging")
    p.add_argument("--drained-file", default="/etc/nginx/ywmessaging/drained.list")
    p.add_argument("--marker", default="# nginx_lb backend=")
    return p.parse_args(argv)


class Lock:
    """Exclusive flock(2) on a file, waiting up to timeout seconds."""

    def __init__(self, path, timeout):
        self.path = path
        self.timeout = timeout
        self.fd = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() > deadline:
                os.close(self.fd)
                raise Refused(f"another drain/undrain held {self.path} for more than {self.timeout:g} s")
            time.sleep(0.05)

    def __exit__(self, *exc):
        os.close(self.fd)  # closing the descriptor releases the lock


def write_atomic(path, text):
    """Replace path with text in one rename, mode 0644: nginx never reads a half-written file."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".nginx_lb-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def parse_servers(text, marker):
    """[(line index, name, down, backup)] of the server lines tagged by the role's marker."""
    tag = re.escape(marker) + r"(?P<name>\S+)\s*$"
    pattern = re.compile(r"^\s*server\s(?P<spec>[^;#]*?)(?P<down> down)?;\s*" + tag)
    servers = []
    for index, line in enumerate(text.split("\n")):
        m = pattern.match(line)
        if m:
            backup = re.search(r"(^|\s)backup(\s|$)", m["spec"]) is not None
            servers.append((index, m["name"], m["down"] is not None, backup))
    return servers


def set_down(text, index, down):
    lines = text.split("\n")
    line = re.sub(r"(?: down)?;(\s*#)", (" down" if down else "") + r";\1", lines[index], count=1)
    lines[index] = line
    return "\n".join(lines)


def nginx_test(args, upstream_text):
    """nginx -t on a private copy of the live configuration with the new upstream.conf.

    nginx resolves relative include paths against the directory of the file given to -c, so a copy
    of nginx.conf and the include directory tests the complete configuration as it would go live.
    """
    os.makedirs(args.staging_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".backend-state-", dir=args.staging_dir) as tmp:
        shutil.copy2(os.path.join(args.conf_dir, "nginx.conf"), os.path.join(tmp, "nginx.conf"))
        src = os.path.join(args.conf_dir, args.include_dir)
        dst = os.path.join(tmp, args.include_dir)
        os.makedirs(dst)
        for entry in os.listdir(src):
            if entry.endswith(".conf"):
                shutil.copy2(os.path.join(src, entry), os.path.join(dst, entry))
        with open(os.path.join(dst, "upstream.conf"), "w", encoding="utf-8") as f:
            f.write(upstream_text)
        proc = subprocess.run(
            ["nginx", "-t", "-q", "-c", os.path.join(tmp, "nginx.conf")], capture_output=True, text=True, check=False
        )
    if proc.returncode != 0:
        raise Refused("nginx -t rejected the change, nothing went live: " + (proc.stderr or proc.stdout).strip())


def worker_pids():
    """PIDs of every nginx worker now (serving or shutting down after an earlier reload)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read().startswith(b"nginx: worker process"):
                    pids.add(int(entry))
        except OSError:
            continue
    return pids


def reload_nginx():
    proc = subprocess.run(["systemctl", "reload", "nginx"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError("systemctl reload nginx failed: " + (proc.stderr or proc.stdout).strip())


def summary(servers, name):
    state = {s[1]: s for s in servers}
    return {
        "state": ("down" if state[name][2] else "up") if name in state else "unknown",
        "in_rotation": [s[1] for s in servers if not s[2] and not s[3]],
        "down": [s[1] for s in servers if s[2]],
    }


def apply(args):
    """Under the lock: check, change, test, put live, reload. Returns the result and the workers to wait for."""
    upstream = os.path.join(args.conf_dir, args.include_dir, "upstream.conf")
    text = read_text(upstream)
    if text is None:
        msg = f"{upstream} does not exist: nginx_lb has not configured this load balancer"
        if args.unknown == "skip":
            return {"changed": False, "state": "unconfigured", "msg": msg + f", nothing to {args.action}"}, set()
        raise Refused(msg)
    servers = parse_servers(text, args.marker)
    by_name = {s[1]: s for s in servers}
    result = {"changed": False}
    if args.name not in by_name:
        known = ", ".join(s[1] for s in servers)
        if args.unknown == "skip":
            result.update(summary(servers, args.name))
            result["msg"] = f"{args.name} is not in this load balancer's upstream (servers: {known}): nothing to do"
            return result, set()
        raise Refused(f"nginx_lb_drain_backend={args.name} is not in the upstream (servers: {known})")

    drained_text = read_text(args.drained_file) or ""
    drained = [line.strip() for line in drained_text.splitlines() if line.strip()]
    listed = args.name in drained
    index, _unused, down, _unused = by_name[args.name]
    drain = args.action == "drain"

    if drain and not down:
        others = [s[1] for s in servers if s[1] != args.name and not s[2] and not s[3]]
        if not others:
            raise Refused(
                f"refusing to drain {args.name}: no other server would be left in rotation "
                f"(down already: {', '.join(s[1] for s in servers if s[2]) or 'none'})"
            )
    new_text = text if down == drain else set_down(text, index, drain)
    new_drained = [d for d in drained if d != args.name]  # undrain: forget it
    if drain:
        new_drained = drained if listed else drained + [args.name]  # drain: keep the order, add it once
    config_change = new_text != text
    list_change = new_drained != drained
    result["changed"] = config_change or list_change
    after = parse_servers(new_text, args.marker)
    result.update(summary(after, args.name))
    verb = "drained" if drain else "put back into rotation"
    if not result["changed"]:
        result["msg"] = f"{args.name} was already {'down' if drain else 'in rotation'}, nothing to do"
        return result, set()
    result["msg"] = f"{args.name} {'would be ' if args.check else ''}{verb}"
    if args.check:
        return result, set()

    old_workers = set()
    list_text = "".join(d + "\n" for d in new_drained)
    if config_change:
        nginx_test(args, new_text)
    if drain and list_change:
        write_atomic(args.drained_file, list_text)  # before the live file: a stop half-way keeps it out
    if config_change:
        old_workers = worker_pids()
        write_atomic(upstream, new_text)
        try:
            reload_nginx()
        except RuntimeError:
            write_atomic(upstream, text)  # nginx keeps serving the previous configuration
            raise
        staged = os.path.join(args.staging_dir, args.include_dir, "upstream.conf")
        if os.path.isdir(os.path.dirname(staged)):
            write_atomic(staged, new_text)  # the staging tree mirrors the live one
    if not drain and list_change:
        write_atomic(args.drained_file, list_text)  # after the reload: a stop half-way keeps it out
    return result, old_workers if drain else set()


def wait_for(pids, timeout):
    """Wait until none of pids exists; the ones left after timeout seconds."""
    deadline = time.monotonic() + timeout
    left = set(pids)
    while left:
        left = {pid for pid in left if os.path.exists(f"/proc/{pid}")}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return left


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = {"backend": args.name, "action": args.action, "check": args.check, "host": os.uname().nodename}
    status = 0
    try:
        with Lock(args.lock_file, args.lock_timeout):
            outcome, old_workers = apply(args)
        result.update(outcome)
        left = wait_for(old_workers, args.wait)
        if left:
            status = 1
            result.update(
                failed=True,
                msg=f"{args.name} is drained, but nginx workers {sorted(left)} still run after {args.wait:g} s: "
                "requests may still be in flight to it",
            )
    except (Refused, RuntimeError, OSError) as exc:
        status = 1
        result.update(failed=True, changed=False, msg=str(exc))
    print(json.dumps(result))
    return status


if __name__ == "__main__":
    sys.exit(main())
