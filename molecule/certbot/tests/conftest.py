"""Print testssl.sh's summary at the end of the run (pytest keeps a passing test's output to itself)."""

import test_certbot


def pytest_terminal_summary(terminalreporter):
    if test_certbot.TESTSSL_SUMMARY:
        terminalreporter.write_sep("=", "testssl.sh summary")
        for line in test_certbot.TESTSSL_SUMMARY:
            terminalreporter.write_line(line)
