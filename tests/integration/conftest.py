"""Fixtures shared by the integration tests (this directory is on sys.path through this file)."""

import bindlab
import pytest


@pytest.fixture
def bind_servers(tmp_path):
    """Real BIND on loopback: a TSIG primary and a secondary that never follows (bindlab.py)."""
    servers = bindlab.start(tmp_path)
    yield servers
    servers.stop()
