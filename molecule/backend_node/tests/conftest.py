"""The backend_node scenario's tests drive the lab with molecule/_shared/labkit.py (put on sys.path here:
Molecule runs pytest from this directory, which is not a package); backend_lab.py holds this scenario's
own helpers. At the end of the run labkit prints the figures the tests measured and the converge durations."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "_shared"))

import labkit  # noqa: E402


def pytest_terminal_summary(terminalreporter):
    times = os.path.join(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"), "deploy-seconds.txt")
    if os.path.exists(times):
        with open(times, encoding="utf-8") as fh:
            runs = [line.strip() for line in fh if line.strip()]
        # converge then idempotence: the first two runs of converge.yml in this Molecule run
        if runs:
            labkit.FIGURES.setdefault("fresh deploy, 2 backends (converge, s)", runs[0])
        if len(runs) > 1:
            labkit.FIGURES.setdefault("no-op re-run (idempotence, s)", runs[1])
    labkit.print_figures(terminalreporter, "backend_node figures", width=58)
