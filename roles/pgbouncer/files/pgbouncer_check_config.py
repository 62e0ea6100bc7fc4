# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Installed by the ywmessaging.scaling.pgbouncer role, run as /usr/local/sbin/pgbouncer-check-config.
"""Check a candidate pgbouncer.ini before it replaces the live one, or the live PgBouncer after it.

    pgbouncer-check-config [--user postgres] CANDIDATE_INI
    pgbouncer-check-config --running [--user postgres] LIVE_INI

PgBouncer has no "check the configuration" switch, and a RELOAD of a file it cannot load is not
harmless: it logs "config file loading failed" but keeps some settings it had already read and
resets others to their defaults. So the candidate is checked in two parts:

1. Its listeners, by this script, because a second PgBouncer cannot bind the port the live one
   holds: listen_port must be 1-65535 (and not below ip_unprivileged_port_start for an unprivileged
   service user); every listen_addr entry must be * or an address a socket of the service user can
   bind on this host (bound with port 0, so nothing is taken); and listen_port on each of them must
   be free or held by the live PgBouncer (the pid in the pidfile), which lets it go when it restarts.
   A listener of any other process (found in /proc/net/tcp{,6}) is reported with its name and pid.
2. Everything else, by a throw-away PgBouncer started as the service user from a copy of the file
   whose listeners are replaced by a unix socket in a private temporary directory (no TCP port, no
   pidfile, no log file; the live PgBouncer is not touched). The file is good when that instance
   reports "process up"; the instance is then stopped. Otherwise its ERROR/FATAL lines are printed.

--running checks that the PgBouncer of the pidfile named in LIVE_INI listens on every
listen_addr:listen_port of it (PgBouncer 1.18 comes up on its unix socket alone when it cannot bind
a TCP port). Exit status 0 when all is well, 1 otherwise (the reasons on stderr).
"""

import argparse
import ipaddress
import os
import pwd
import select
import shutil
import socket
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


# What PgBouncer binds for each wildcard listen_addr entry (these name addresses, nothing binds here).
WILDCARDS = {"*": ["0.0.0.0", "::"], "0.0.0.0": ["0.0.0.0"], "::": ["::"]}  # noqa: S104
TCP_LISTEN = "0A"


def read_settings(path):
    """The [pgbouncer] section of an ini file as PgBouncer reads it (last value wins, blanks trimmed)."""
    settings = {}
    section = None
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.strip()
            if not line or line[0] in ";#":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip().lower()
                continue
            if section == "pgbouncer" and "=" in line:
                key, value = line.split("=", 1)
                settings[key.strip().lower()] = value.strip()
    return settings


def listen_addresses(settings):
    return [a.strip() for a in settings.get("listen_addr", "").split(",") if a.strip()]


def live_pids(*settings_list):
    """Pids of the live PgBouncer, from the pidfile(s) the configurations name."""
    pids = set()
    for settings in settings_list:
        pidfile = (settings or {}).get("pidfile")
        if not pidfile:
            continue
        try:
            with open(pidfile, encoding="ascii") as fh:
                pid = int(fh.read().strip())
        except (OSError, ValueError):
            continue
        if os.path.exists("/proc/%d" % pid):
            pids.add(pid)
    return pids


def _proc_address(hex_address):
    """Address text from /proc/net/tcp{,6}'s hex (32-bit words in host byte order, little-endian here)."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def tcp_listeners(port):
    """[(address, inode, uid)] of every listening TCP socket on `port` (IPv4 and IPv6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == TCP_LISTEN and int(hex_port, 16) == port:
                found.append((_proc_address(address), fields[9], int(fields[7])))
    return found


def _fd_sockets(pid):
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except PermissionError:
            raise
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def pid_sockets(pid):
    """Socket inodes of process `pid`. Root in a container (no CAP_SYS_PTRACE) may not read another
    user's /proc/PID/fd: then a child switched to that user reads them."""
    try:
        return _fd_sockets(pid)
    except PermissionError:
        pass
    except OSError:
        return set()
    owner = os.stat("/proc/%d" % pid).st_uid
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_fd)
        try:
            os.setgroups([])
            os.setgid(pwd.getpwuid(owner).pw_gid)
            os.setuid(owner)
            os.write(write_fd, " ".join(sorted(_fd_sockets(pid))).encode("ascii"))
        finally:
            os._exit(0)
    os.close(write_fd)
    data = _read_all(read_fd)
    os.waitpid(child, 0)
    return set(data.decode("ascii").split())


def _read_all(fd):
    data = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    os.close(fd)
    return data


def holder_name(inode, uid):
    """Who holds a socket: "name (pid N)" when /proc tells, else the user that owns it."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if inode in _fd_sockets(int(entry)):
                    return "%s (pid %s)" % (process_name(int(entry)), entry)
            except OSError:
                continue
    try:
        return "a process of user %s" % pwd.getpwuid(uid).pw_name
    except KeyError:
        return "a process of uid %d" % uid


def process_name(pid):
    try:
        with open("/proc/%d/comm" % pid, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return "?"


def _conflicts(wanted, held):
    """Would binding `wanted` clash with a listener on `held` (same port)?"""
    wanted_ip, held_ip = ipaddress.ip_address(wanted), ipaddress.ip_address(held)
    if held_ip.version == 6 and held_ip.is_unspecified:
        return True  # a dual-stack [::] listener also holds every IPv4 address
    if wanted_ip.version != held_ip.version:
        return False
    return wanted_ip == held_ip or wanted_ip.is_unspecified or held_ip.is_unspecified


def _bind_probe(addresses, account):
    """[(address, error)] for addresses a socket of `account` cannot bind (port 0: takes nothing)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop to the service user, probe, report through the pipe
        os.close(read_fd)
        failures = []
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(account.pw_gid)
                os.setuid(account.pw_uid)
            for address in addresses:
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                probe = socket.socket(family, socket.SOCK_STREAM)
                try:
                    probe.bind((address, 0))
                except OSError as exc:
                    failures.append("%s\t%s" % (address, exc.strerror or exc))
                finally:
                    probe.close()
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the check
            failures.append("*\t%s" % exc)
        os.write(write_fd, "\n".join(failures).encode("utf-8"))
        os._exit(0)
    os.close(write_fd)
    data = _read_all(read_fd)
    os.waitpid(pid, 0)
    return [tuple(line.split("\t", 1)) for line in data.decode("utf-8").splitlines() if line]


def listener_problems(settings, account, live_settings=None):
    """What would keep PgBouncer from listening where `settings` say, before it is started."""
    problems = []
    port_text = settings.get("listen_port", "6432")
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        return ["listen_port = %s: must be a TCP port, 1-65535 (pgbouncer_listen_port)" % port_text]
    addresses = listen_addresses(settings)
    if not addresses:
        return problems
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start", encoding="ascii") as fh:
            unprivileged_start = int(fh.read().strip())
    except (OSError, ValueError):
        unprivileged_start = 1024
    if account.pw_uid != 0 and port < unprivileged_start:
        problems.append(
            "listen_port = %d: %s may not bind ports below %d (pgbouncer_listen_port)"
            % (port, account.pw_name, unprivileged_start)
        )
    concrete = []
    for address in addresses:
        if address in WILDCARDS:
            concrete.extend(WILDCARDS[address])
            continue
        try:
            ipaddress.ip_address(address)
        except ValueError:
            try:
                concrete.extend(
                    sorted({info[4][0] for info in socket.getaddrinfo(address, None, type=socket.SOCK_STREAM)})
                )
            except socket.gaierror as exc:
                problems.append("listen_addr %s: cannot be resolved (%s) (pgbouncer_listen_addr)" % (address, exc))
            continue
        concrete.append(address)
    probe_addresses = [a for a in concrete if not (a == "::" and not socket.has_ipv6)]
    for address, error in _bind_probe(probe_addresses, account):
        if address == "::" and "*" in addresses:
            continue  # * on a host without IPv6: PgBouncer listens on IPv4 only
        problems.append(
            "listen_addr %s: %s cannot listen there (%s) - not an address of this host? (pgbouncer_listen_addr)"
            % (address, account.pw_name, error)
        )
    live = set()
    for pid in live_pids(settings, live_settings):
        live |= pid_sockets(pid)
    for held, inode, uid in tcp_listeners(port):
        clashes = [a for a in concrete if _conflicts(a, held)]
        if not clashes or inode in live:
            continue  # no clash, or the live PgBouncer: it lets the port go when it restarts
        problems.append(
            "listen_port %d on %s is already taken by %s listening on %s"
            " (pgbouncer_listen_addr / pgbouncer_listen_port)"
            % (port, ", ".join(clashes), holder_name(inode, uid), held)
        )
    return problems


def running_problems(settings):
    """What the live PgBouncer (pidfile) does not listen on, of the listeners `settings` name."""
    pids = live_pids(settings)
    if not pids:
        return ["no running PgBouncer: the pidfile %s names no live process" % settings.get("pidfile", "(none)")]
    pid = pids.pop()
    port = int(settings.get("listen_port", "6432"))
    inodes = pid_sockets(pid)
    listeners = tcp_listeners(port)
    mine = [address for address, inode, _uid in listeners if inode in inodes]
    others = [
        "%s by %s" % (address, holder_name(inode, uid)) for address, inode, uid in listeners if inode not in inodes
    ]
    problems = []
    for address in listen_addresses(settings):
        wanted = WILDCARDS.get(address, [address])
        try:
            wanted = [str(ipaddress.ip_address(w)) for w in wanted]
        except ValueError:
            wanted = sorted({info[4][0] for info in socket.getaddrinfo(address, None, type=socket.SOCK_STREAM)})
        if not any(w in mine for w in wanted):
            taken = " (port held by %s)" % ", ".join(others) if others else ""
            problems.append("PgBouncer (pid %d) does not listen on %s:%d%s" % (pid, address, port, taken))
    return problems


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
    parser.add_argument("--running", action="store_true", help="check the live PgBouncer's listeners instead")
    parser.add_argument(
        "--live",
        default="/etc/pgbouncer/pgbouncer.ini",
        help="live configuration (its pidfile names the live PgBouncer)",
    )
    parser.add_argument("candidate", help="pgbouncer.ini to check")
    args = parser.parse_args(argv)
    account = pwd.getpwnam(args.user)
    settings = read_settings(args.candidate)
    if args.running:
        problems = running_problems(settings)
        if problems:
            sys.stderr.write("%s\n" % "\n".join(problems))
            return 1
        print("PgBouncer listens on every listen_addr of %s" % args.candidate)
        return 0
    live_settings = read_settings(args.live) if os.path.exists(args.live) else None
    problems = listener_problems(settings, account, live_settings)
    if problems:
        sys.stderr.write("PgBouncer could not listen as configured:\n%s\n" % "\n".join(problems))
        return 1
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
