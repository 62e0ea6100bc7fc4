# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Installed by the ywmessaging.scaling.pgbouncer role, run as /usr/local/sbin/pgbouncer-check-config.
"""Check a candidate pgbouncer.ini before it replaces the live one.

    pgbouncer-check-config [--user postgres] CANDIDATE_INI

PgBouncer has no "check the configuration" switch, and a RELOAD of a file it cannot load is not
harmless: it logs "config file loading failed" but keeps some settings it had already read and
resets others to their defaults. So the candidate is loaded by a throw-away PgBouncer instead,
started as the service user from a copy of the file whose listeners are replaced by a unix socket
in a private temporary directory (no TCP port, no pidfile, no log file; the live PgBouncer is not
touched). The file is good when that instance reports "process up"; the instance is then stopped.
Otherwise its ERROR/FATAL lines are printed and the exit status is 1.
"""

import argparse
import os
import pwd
import select
import shutil
import subprocess
import sys
import tempfile
import time

READY_MARK = "process up"
DEADLINE_SECONDS = 20

OVERRIDES = """
; --- pgbouncer-check-config: a private, listener-less instance ---
[pgbouncer]
listen_addr =
unix_socket_dir = {tmp}
pidfile =
logfile =
syslog = 0
user =
"""


def start(candidate, account, tmp):
    check_ini = os.path.join(tmp, "check.ini")
    with open(candidate, encoding="utf-8") as src, open(check_ini, "w", encoding="utf-8") as dst:
        dst.write(src.read())
        dst.write(OVERRIDES.format(tmp=tmp))
    os.chown(tmp, account.pw_uid, account.pw_gid)
    os.chown(check_ini, account.pw_uid, account.pw_gid)
    os.chmod(check_ini, 0o600)
    drop = {}
    if os.geteuid() == 0:
        drop = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    return subprocess.Popen(
        ["pgbouncer", check_ini], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp, bufsize=0, **drop
    )


def watch(proc):
    """Read the instance's log until it is up, it exits, or the deadline passes."""
    lines = []
    pending = b""
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, lines + ["PgBouncer did not report '%s' within %d s" % (READY_MARK, DEADLINE_SECONDS)]
        readable = select.select([fd], [], [], remaining)[0]
        if not readable:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            proc.wait()
            if pending:
                lines.append(pending.decode("utf-8", "replace"))
            return False, lines + ["PgBouncer exited with status %s" % proc.returncode]
        pending += chunk
        while b"\n" in pending:
            raw, pending = pending.split(b"\n", 1)
            line = raw.decode("utf-8", "replace").rstrip()
            lines.append(line)
            if READY_MARK in line:
                return True, lines


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--user", default="postgres", help="account PgBouncer runs as (default: postgres)")
    parser.add_argument("candidate", help="pgbouncer.ini to check")
    args = parser.parse_args(argv)
    account = pwd.getpwnam(args.user)
    tmp = tempfile.mkdtemp(prefix="pgbouncer-check-")
    proc = None
    try:
        proc = start(args.candidate, account, tmp)
        good, lines = watch(proc)
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    if good:
        print("PgBouncer accepts %s: %s" % (args.candidate, lines[-1]))
        return 0
    problems = [line for line in lines if " ERROR " in line or " FATAL " in line or not line.startswith("20")]
    sys.stderr.write("PgBouncer rejects the configuration:\n%s\n" % "\n".join(problems or lines))
    return 1


if __name__ == "__main__":
    sys.exit(main())
