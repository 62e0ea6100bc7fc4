"""Shared by every scenario's testinfra suite (Molecule runs pytest from the scenario's tests/).

A verify step that collects no test is a failure, never a silent pass: pytest already exits 5 in
that case and Molecule treats any non-zero exit as failure; this guard makes the reason explicit.
"""

import pytest


def pytest_collection_modifyitems(session, config, items):
    if not items:
        pytest.exit("no test collected: the scenario's verify step would check nothing", returncode=5)
