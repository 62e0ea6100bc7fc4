# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probing: a response against its expectations, rounds with retries and deadline (module_utils/http_health.py)."""

import pytest

from ansible_collections.ywmessaging.scaling.plugins.module_utils import http_health as hh
from ansible_collections.ywmessaging.scaling.plugins.module_utils.http_target import ProbeError, Response, Target


def target(name="t", url_host="a", **opts):
    return Target(name, "http", url_host, 80, "/", **opts)


def test_evaluate_response_passes_and_returns_checked_and_extra_fields():
    ep = target(json={"status": "ok", "checks.database": "ok"}, return_body_fields=["count"])
    problems, fields = hh.evaluate_response(ep, 200, b'{"status": "ok", "checks": {"database": "ok"}, "count": 4}')
    assert problems == []
    assert fields == {"status": "ok", "checks.database": "ok", "count": 4}


def test_evaluate_response_reports_status_and_every_json_mismatch_with_expected_and_actual():
    ep = target(json={"status": "ok", "checks.database": "ok", "checks.redis": "ok"})
    problems, fields = hh.evaluate_response(ep, 503, b'{"status": "degraded", "checks": {"database": "error"}}')
    assert problems == [
        "HTTP status 503, expected 200",
        'json field \'status\' is "degraded", expected "ok"',
        'json field \'checks.database\' is "error", expected "ok"',
        "json field 'checks.redis' missing, expected \"ok\"",
    ]
    assert fields == {"status": "degraded", "checks.database": "error", "checks.redis": None}


def test_evaluate_response_lists_accepted_codes():
    assert hh.evaluate_response(target(status_codes=[200, 204]), 500, b"")[0] == [
        "HTTP status 500, expected one of 200, 204"
    ]


def test_non_json_body_is_a_problem_only_when_the_status_was_accepted():
    ep = target(json={"status": "ok"})
    assert hh.evaluate_response(ep, 200, b"<html>\n  <b>hi</b>")[0] == [
        'body is not JSON (starts with "<html> <b>hi</b>")'
    ]
    assert hh.evaluate_response(ep, 502, b"<html>Bad Gateway</html>")[0] == ["HTTP status 502, expected 200"]


def test_check_endpoint_reports_a_response_and_a_request_that_got_none():
    ep = target(name="db", json={"status": "ok"})
    good = hh.check_endpoint(ep, request=lambda _t: Response(200, {}, b'{"status": "ok"}', 3.2))
    assert good == dict(
        name="db", url="http://a/", ok=True, status=200, latency_ms=3.2, fields={"status": "ok"}, error=None
    )

    def refused(_t):
        raise ProbeError("connection refused", 0.4)

    bad = hh.check_endpoint(ep, request=refused)
    assert (bad["ok"], bad["status"], bad["error"], bad["latency_ms"]) == (False, None, "connection refused", 0.4)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def scripted_check(healthy_from):
    """A check where endpoint NAME passes from its healthy_from[NAME]-th attempt on (None: never)."""
    calls = {}

    def check(ep):
        calls[ep.name] = calls.get(ep.name, 0) + 1
        first_ok = healthy_from[ep.name]
        ok = first_ok is not None and calls[ep.name] >= first_ok
        return {"name": ep.name, "url": ep.url, "ok": ok, "error": None if ok else "HTTP status 503, expected 200"}

    return check, calls


@pytest.mark.parametrize(
    "retries, deadline, healthy_from, rounds, attempts",
    [
        (None, None, {"a": 1, "b": None}, 1, {"a": 1, "b": 1}),
        (3, None, {"a": 1, "b": 3}, 3, {"a": 1, "b": 3}),
        (2, None, {"a": 1, "b": None}, 3, {"a": 1, "b": 3}),
        (0, None, {"a": 2, "b": 1}, 1, {"a": 1, "b": 1}),
        # deadline 10 s, delay 1 s: rounds at t=0..9, the 10th round would start at the deadline
        (None, 10, {"a": None, "b": 1}, 10, {"a": 10, "b": 1}),
        (None, 10, {"a": 4, "b": 1}, 4, {"a": 4, "b": 1}),
        (2, 10, {"a": None, "b": 1}, 3, {"a": 3, "b": 1}),
    ],
)
def test_health_run_rechecks_only_failing_endpoints(retries, deadline, healthy_from, rounds, attempts):
    clock = FakeClock()
    check, calls = scripted_check(healthy_from)
    run = hh.HealthRun(
        [target("a", "a"), target("b", "b")],
        retries=retries,
        delay=1,
        deadline=deadline,
        check=check,
        clock=clock,
        sleep=clock.sleep,
    )
    results = run.run()
    assert run.rounds == rounds
    assert calls == attempts
    assert dict((r["name"], r["attempts"]) for r in results) == attempts
    assert [r["name"] for r in results] == ["a", "b"]


def test_failure_message_names_every_failing_endpoint_once():
    results = [
        {"name": "good", "url": "http://a/", "ok": True, "error": None},
        {"name": "down", "url": "http://b/", "ok": False, "error": "connection refused"},
        {"name": "sick", "url": "http://c/", "ok": False, "error": "HTTP status 503, expected 200"},
    ]
    assert hh.failure_message(results, 3, 4.25) == (
        "2 of 3 endpoints unhealthy after 3 attempts in 4.2 s: down (http://b/): connection refused; "
        "sick (http://c/): HTTP status 503, expected 200"
    )
    assert hh.failure_message(results[:1], 1, 0.1) == ""
