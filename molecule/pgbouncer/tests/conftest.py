"""The pgbouncer scenario's tests drive the lab with molecule/_shared/labkit.py (put on sys.path here:
Molecule runs pytest from this directory, which is not a package) and the scenario's own helpers in
pgblab.py.

Also: honour each test module's `testinfra_hosts` even though Molecule runs testinfra with --hosts=all.
testinfra lets --hosts win over a module's testinfra_hosts, so every test would run against every
platform. Items whose host is not in their module's list are deselected here (not skipped).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "_shared"))

import labkit  # noqa: E402

pytest_terminal_summary = labkit.terminal_summary("pgbouncer figures")


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        wanted = getattr(item.module, "testinfra_hosts", None)
        callspec = getattr(item, "callspec", None)
        host = callspec.params.get("_testinfra_host") if callspec else None
        if wanted is not None and host is not None and host.backend.get_hostname() not in wanted:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
