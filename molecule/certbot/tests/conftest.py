"""The certbot scenario's tests drive the lab with molecule/_shared/labkit.py (put on sys.path here:
Molecule runs pytest from this directory, which is not a package). At the end of the run labkit
prints what the drills measured and testssl.sh's summary (pytest keeps a passing test's output to
itself)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "_shared"))

import labkit  # noqa: E402

pytest_terminal_summary = labkit.terminal_summary("certbot figures")
