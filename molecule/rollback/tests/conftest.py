"""The rollback scenario's tests use the helpers in molecule/_shared/stacklab."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "_shared"))

from stacklab import print_figures  # noqa: E402


def pytest_terminal_summary(terminalreporter):
    print_figures(terminalreporter, "rollback figures")
