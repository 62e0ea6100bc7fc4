"""port_probe: firewall drops, missing listeners and open ports are told apart."""

import errno
import socket
import threading

import pytest

from ansible_collections.ywmessaging.scaling.plugins.module_utils import port_probe


@pytest.mark.parametrize(
    "exc, state",
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "refused"),
        (socket.timeout("timed out"), "filtered"),
        (OSError(errno.ETIMEDOUT, "Connection timed out"), "filtered"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "unreachable"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "unreachable"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "unresolved"),
    ],
)
def test_socket_errors_map_to_states(exc, state):
    assert port_probe.classify_error(exc) == state


@pytest.mark.parametrize(
    "expect, state, ok",
    [
        ("open", "open", True),
        ("open", "refused", False),
        ("reachable", "refused", True),
        ("reachable", "open", True),
        ("reachable", "filtered", False),
        ("reachable", "unresolved", False),
    ],
)
def test_expectations(expect, state, ok):
    def connect(_address, _timeout):
        if state == "open":
            return socket.socket()
        raise {"refused": ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
               "filtered": socket.timeout("timed out"),
               "unresolved": socket.gaierror(socket.EAI_NONAME, "unknown")}[state]  # fmt: skip

    (result,) = port_probe.probe_all([{"name": "x", "host": "h", "port": 1, "expect": expect}], 1, 4, connect)
    assert (result["state"], result["ok"]) == (state, ok)


def test_problem_table_lists_only_failures_with_what_was_expected():
    results = [
        {
            "name": "backend -> redis",
            "host": "redis-1",
            "port": 6379,
            "expect": "open",
            "state": "filtered",
            "ok": False,
        },
        {
            "name": "backend -> pgbouncer",
            "host": "pgb",
            "port": 6432,
            "expect": "reachable",
            "state": "refused",
            "ok": True,
        },
    ]
    table = port_probe.problem_table(results, source="backend-1")
    lines = table.splitlines()
    assert lines[0].split() == ["from", "to", "port", "path", "expected", "found"]
    assert len(lines) == 2
    assert "redis-1" in lines[1] and "6379" in lines[1] and lines[1].endswith("filtered")
    assert port_probe.problem_table(results[1:]) == ""


@pytest.fixture
def loopback_ports():
    """A port that listens, a port where nothing listens, and a port whose accept queue is full,
    so new connections hang like a firewall drop - all on 127.0.0.1."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(16)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    for _attempt in range(8):  # fill the accept queue; later SYNs are dropped
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(full.getsockname())
        fillers.append(filler)
    stop = threading.Event()
    yield {"open": listening.getsockname()[1], "refused": closed_port, "filtered": full.getsockname()[1]}
    stop.set()
    for sock in [listening, full, *fillers]:
        sock.close()


def test_real_sockets_on_loopback(loopback_ports):
    targets = [
        {"name": state, "host": "127.0.0.1", "port": port, "expect": "reachable"}
        for state, port in loopback_ports.items()
    ]
    results = {r["name"]: r for r in port_probe.probe_all(targets, timeout=1, max_workers=8)}
    assert results["open"]["state"] == "open" and results["open"]["ok"]
    assert results["refused"]["state"] == "refused" and results["refused"]["ok"]
    assert results["filtered"]["state"] == "filtered" and not results["filtered"]["ok"]
