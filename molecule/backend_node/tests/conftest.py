"""Print the figures the backend_node tests measured (and the converge durations) at the end."""

import os

from backend_lab import FIGURES


def pytest_terminal_summary(terminalreporter):
    times = os.path.join(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"), "deploy-seconds.txt")
    if os.path.exists(times):
        with open(times, encoding="utf-8") as fh:
            runs = [line.strip() for line in fh if line.strip()]
        # converge then idempotence: the first two runs of converge.yml in this Molecule run
        if runs:
            FIGURES.setdefault("fresh deploy, 2 backends (converge, s)", runs[0])
        if len(runs) > 1:
            FIGURES.setdefault("no-op re-run (idempotence, s)", runs[1])
    if FIGURES:
        terminalreporter.write_sep("=", "backend_node figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name:<58} {value}")
