# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""TCP reachability probes for the pre-flight port matrix.

A probe tells apart what a firewall does from what a missing service does:

* ``open``        the TCP handshake completed: something listens.
* ``refused``     the host answered with a reset: the path is open, nothing listens (yet).
* ``filtered``    no answer before the timeout: a firewall or security group drops the traffic.
* ``unreachable`` the network says there is no route to the host.
* ``unresolved``  the name does not resolve.

Before a first deployment PgBouncer, nginx and the backends do not listen yet, so their ports
can only be ``refused``; that already proves the security groups let the traffic through.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import socket
import time
from concurrent.futures import ThreadPoolExecutor

STATES = ("open", "refused", "filtered", "unreachable", "unresolved")
# What each expectation accepts.
ACCEPTS = {
    "open": ("open",),
    "reachable": ("open", "refused"),
}


def classify_error(exc):
    """Map a socket error raised by connect() to a state."""
    if isinstance(exc, socket.gaierror):
        return "unresolved"
    if isinstance(exc, socket.timeout):
        return "filtered"
    code = getattr(exc, "errno", None)
    if code == errno.ECONNREFUSED:
        return "refused"
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN):
        return "unreachable"
    if code == errno.ETIMEDOUT:
        return "filtered"
    return "unreachable"


def probe(host, port, timeout, connect=socket.create_connection):
    """Try one TCP connection; return (state, latency_ms, detail)."""
    started = time.monotonic()
    try:
        sock = connect((host, port), timeout)
    except (OSError, socket.timeout) as exc:  # socket.timeout is an OSError on Python 3
        return classify_error(exc), round((time.monotonic() - started) * 1000, 1), str(exc)
    sock.close()
    return "open", round((time.monotonic() - started) * 1000, 1), ""


def probe_all(targets, timeout, max_workers, connect=socket.create_connection):
    """Probe every target concurrently. Each target is a dict with name, host, port, expect."""
    if not targets:
        return []

    def one(target):
        state, latency, detail = probe(target["host"], target["port"], timeout, connect)
        return dict(
            target,
            state=state,
            latency_ms=latency,
            detail=detail,
            ok=state in ACCEPTS[target["expect"]],
        )

    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(targets)))) as pool:
        return list(pool.map(one, targets))


def problem_table(results, source=None):
    """One table of every target whose state its expectation does not accept."""
    bad = [r for r in results if not r["ok"]]
    if not bad:
        return ""
    rows = [("from", "to", "port", "path", "expected", "found")]
    for r in bad:
        rows.append(
            (
                source or "-",
                r["host"],
                str(r["port"]),
                r.get("name") or "-",
                " or ".join(ACCEPTS[r["expect"]]),
                r["state"],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)
