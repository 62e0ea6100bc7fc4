# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the pure logic behind ywmessaging.scaling.upstream_health."""

import socket
import ssl

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.ywmessaging.scaling.plugins.module_utils import http_health as hh
from ansible_collections.ywmessaging.scaling.plugins.modules import upstream_health

DEFAULTS = {
    "scheme": "http",
    "port": None,
    "path": "/",
    "method": "GET",
    "status_codes": [200],
    "json": {},
    "return_body_fields": [],
    "timeout": 5.0,
    "validate_certs": True,
    "ca_path": None,
    "sni_host": None,
    "host_header": None,
    "headers": {},
}


def endpoint(**raw):
    ep, errors = hh.normalize_endpoint(raw, DEFAULTS)
    assert errors == []
    return ep


def errors_for(raw, **defaults):
    ep, errors = hh.normalize_endpoint(raw, dict(DEFAULTS, **defaults))
    assert ep is None
    return " | ".join(errors)


# --------------------------------------------------------------------------- dotted paths

BODY = {
    "status": "ok",
    "checks": {"database": "ok", "redis": {"latency": 3}},
    "items": [{"state": "up"}, {"state": "down"}],
    "db.primary": "ok",
    "ready": True,
    "count": 0,
}


@pytest.mark.parametrize(
    "path, found, value",
    [
        ("status", True, "ok"),
        ("checks.database", True, "ok"),
        ("checks.redis.latency", True, 3),
        ("items.0.state", True, "up"),
        ("items.-1.state", True, "down"),
        ("items.2.state", False, None),
        ("db\\.primary", True, "ok"),
        ("db.primary", False, None),
        ("checks.missing", False, None),
        ("status.deeper", False, None),
        ("items.x", False, None),
        ("count", True, 0),
    ],
)
def test_lookup_follows_dotted_paths(path, found, value):
    assert hh.lookup(BODY, path) == (found, value)


@pytest.mark.parametrize(
    "path, bad",
    [("status", False), ("a.b.c", False), ("a\\.b", False), ("", True), ("a..b", True), (".a", True), ("a.", True)],
)
def test_path_error_rejects_empty_keys(path, bad):
    assert (hh.path_error(path) is not None) is bad


@pytest.mark.parametrize(
    "expected, actual, match",
    [
        ("ok", "ok", True),
        ("ok", "degraded", False),
        (True, True, True),
        (True, 1, False),
        (1, True, False),
        (0, False, False),
        ("true", True, True),
        ("1", 1, True),
        ("null", None, True),
        ("ok", None, False),
        ("ok", {"status": "ok"}, False),
        (1, 1.0, True),
        (2, "2", False),
        ({"a": 1}, {"a": 1}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ([1, 2], [1, 2], True),
        ([1], [1, 2], False),
        ([True], [1], False),
        (None, None, True),
    ],
)
def test_values_match_is_type_strict_but_accepts_string_spelling(expected, actual, match):
    assert hh.values_match(expected, actual) is match


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    "raw, scheme, host, port, path, url",
    [
        ({"url": "http://10.0.0.1:3000/health"}, "http", "10.0.0.1", 3000, "/health", "http://10.0.0.1:3000/health"),
        ({"url": "https://api.example/health?deep=1"}, "https", "api.example", 443, "/health?deep=1", None),
        ({"url": "http://api.example"}, "http", "api.example", 80, "/", "http://api.example/"),
        ({"url": "http://[::1]:8080/x"}, "http", "::1", 8080, "/x", "http://[::1]:8080/x"),
        ({"host": "10.0.0.2"}, "http", "10.0.0.2", 80, "/", "http://10.0.0.2/"),
        ({"host": "10.0.0.2", "scheme": "https"}, "https", "10.0.0.2", 443, "/", "https://10.0.0.2/"),
        ({"host": "[::1]", "port": 3000, "path": "/health"}, "http", "::1", 3000, "/health", None),
    ],
)
def test_normalize_endpoint_forms(raw, scheme, host, port, path, url):
    ep = endpoint(**raw)
    assert (ep.scheme, ep.host, ep.port, ep.path) == (scheme, host, port, path)
    if url:
        assert ep.url == url


def test_module_level_defaults_apply_and_endpoint_values_win():
    defaults = dict(DEFAULTS, port=3000, path="/health", json={"status": "ok"}, headers={"X-A": "1", "X-B": "1"})
    inherited = hh.normalize_endpoint({"host": "10.0.0.1"}, defaults)[0]
    own = hh.normalize_endpoint(
        {"host": "10.0.0.2", "port": 3001, "json": {"ready": True}, "headers": {"X-B": "2"}}, defaults
    )[0]
    assert (inherited.port, inherited.path, inherited.json) == (3000, "/health", {"status": "ok"})
    # json is replaced, not merged; headers are merged with the endpoint winning.
    assert (own.port, own.json) == (3001, {"ready": True})
    assert own.headers == {"X-A": "1", "X-B": "2"}


def test_url_endpoints_ignore_module_level_port_and_path():
    ep, errors = hh.normalize_endpoint({"url": "http://a.example:81/x"}, dict(DEFAULTS, port=3000, path="/health"))
    assert errors == [] and (ep.port, ep.path) == (81, "/x")


def test_endpoint_is_named_by_url_when_unnamed():
    assert endpoint(url="http://a.example/health").name == "http://a.example/health"
    assert endpoint(host="a.example", port=3000).name == "http://a.example:3000/"


@pytest.mark.parametrize(
    "raw, defaults, fragment",
    [
        ({}, {}, "needs url, or host"),
        ({"url": "http://a/", "host": "b"}, {}, "either url or host"),
        ({"url": "http://a/", "port": 81}, {}, "either url or host"),
        ({"url": "ftp://a/"}, {}, "must start with http:// or https://"),
        ({"url": "a.example/health"}, {}, "must start with http:// or https://"),
        ({"url": "http://u:p@a/"}, {}, "must not carry credentials"),
        ({"url": "http://a:99999/"}, {}, "invalid port"),
        ({"host": "a", "port": 0}, {}, "out of range"),
        ({"host": "a", "path": "health"}, {}, "must start with /"),
        ({"host": "a", "method": "POST"}, {}, "GET or HEAD"),
        ({"host": "a", "method": "HEAD", "json": {"status": "ok"}}, {}, "use method GET"),
        ({"host": "a", "return_body_fields": ["x"]}, {"method": "HEAD"}, "use method GET"),
        ({"host": "a"}, {"method": "HEAD", "json": {"status": "ok"}}, "use method GET"),
        ({"host": "a", "status_codes": [200, 42]}, {}, "got 42"),
        ({"host": "a", "json": {"a..b": 1}}, {}, "json path 'a..b'"),
        ({"host": "a", "return_body_fields": [""]}, {}, "return_body_fields entry ''"),
        ({"host": "a", "timeout": 0}, {}, "timeout must be greater than 0"),
        ({"host": "a", "sni_host": "api.example"}, {}, "sni_host only applies to https"),
        ({"url": "https://a/", "ca_path": "/nonexistent/ca.pem"}, {}, "ca_path /nonexistent/ca.pem does not exist"),
    ],
)
def test_normalize_endpoint_rejects_bad_input(raw, defaults, fragment):
    assert fragment in errors_for(raw, **defaults)


def test_head_endpoint_does_not_inherit_body_expectations():
    defaults = dict(DEFAULTS, json={"status": "ok"}, return_body_fields=["uptime"])
    ep, errors = hh.normalize_endpoint({"host": "a", "method": "HEAD"}, defaults)
    assert errors == [] and ep.json == {} and ep.return_body_fields == []


def test_tls_defaults_are_ignored_for_plain_http_endpoints():
    ep, errors = hh.normalize_endpoint({"host": "a"}, dict(DEFAULTS, sni_host="api.example"))
    assert errors == [] and ep.sni_host is None


def test_normalize_endpoints_reports_every_error_and_duplicate_names():
    raw = [
        {"name": "one", "host": "a"},
        {"name": "one", "host": "b"},
        {"name": "bad", "url": "ftp://x/"},
        {"host": "c", "timeout": -1},
    ]
    endpoints, errors = hh.normalize_endpoints(raw, DEFAULTS)
    assert [e.name for e in endpoints] == ["one"]
    assert len(errors) == 3
    assert "endpoints[1]" in errors[0] and "already used" in errors[0]
    assert errors[1].startswith("endpoints[2] (bad):")
    assert errors[2].startswith("endpoints[3]:")


@pytest.mark.parametrize(
    "raw, host_header, server_name",
    [
        ({"url": "https://10.0.0.5/h"}, None, "10.0.0.5"),
        ({"url": "https://10.0.0.5/h", "sni_host": "api.example"}, "api.example", "api.example"),
        ({"url": "https://10.0.0.5:8443/h", "sni_host": "api.example"}, "api.example:8443", "api.example"),
        ({"url": "https://10.0.0.5/h", "host_header": "api.example:443"}, "api.example:443", "api.example"),
        ({"url": "https://10.0.0.5/h", "sni_host": "a.example", "host_header": "b.example"}, "b.example", "a.example"),
        ({"url": "http://10.0.0.5/h", "host_header": "api.example"}, "api.example", "api.example"),
    ],
)
def test_sni_and_host_header(raw, host_header, server_name):
    ep = endpoint(**raw)
    headers = ep.request_headers()
    assert headers.get("Host") == host_header
    assert ep.server_name == server_name


def test_host_header_replaces_a_host_given_in_headers():
    ep = endpoint(url="http://10.0.0.5/", headers={"host": "old"}, host_header="new")
    assert [v for k, v in ep.request_headers().items() if k.lower() == "host"] == ["new"]


# --------------------------------------------------------------------------- evaluating a response


def test_evaluate_response_passes_and_returns_checked_and_extra_fields():
    ep = endpoint(url="http://a/", json={"status": "ok", "checks.database": "ok"}, return_body_fields=["count"])
    problems, fields = hh.evaluate_response(ep, 200, b'{"status": "ok", "checks": {"database": "ok"}, "count": 4}')
    assert problems == []
    assert fields == {"status": "ok", "checks.database": "ok", "count": 4}


def test_evaluate_response_reports_status_and_every_json_mismatch_with_expected_and_actual():
    ep = endpoint(url="http://a/", json={"status": "ok", "checks.database": "ok", "checks.redis": "ok"})
    problems, fields = hh.evaluate_response(ep, 503, b'{"status": "degraded", "checks": {"database": "error"}}')
    assert problems == [
        "HTTP status 503, expected 200",
        'json field \'status\' is "degraded", expected "ok"',
        'json field \'checks.database\' is "error", expected "ok"',
        "json field 'checks.redis' missing, expected \"ok\"",
    ]
    assert fields == {"status": "degraded", "checks.database": "error", "checks.redis": None}


def test_evaluate_response_lists_accepted_codes():
    ep = endpoint(url="http://a/", status_codes=[200, 204])
    assert hh.evaluate_response(ep, 500, b"")[0] == ["HTTP status 500, expected one of 200, 204"]


def test_non_json_body_is_a_problem_only_when_the_status_was_accepted():
    ep = endpoint(url="http://a/", json={"status": "ok"})
    assert hh.evaluate_response(ep, 200, b"<html>\n  <b>hi</b>")[0] == [
        'body is not JSON (starts with "<html> <b>hi</b>")'
    ]
    assert hh.evaluate_response(ep, 502, b"<html>Bad Gateway</html>")[0] == ["HTTP status 502, expected 200"]


@pytest.mark.parametrize(
    "exc, fragment",
    [
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (socket.timeout("timed out"), "timed out after 2 s"),
        (TimeoutError("timed out"), "timed out after 2 s"),
        (ConnectionResetError(104, "reset"), "connection reset by peer"),
        (socket.gaierror(-2, "Name or service not known"), "cannot resolve a.example: Name or service not known"),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "TLS error"),
        (OSError(113, "No route to host"), "connection error: No route to host"),
        (ValueError("odd"), "unexpected error: ValueError: odd"),
    ],
)
def test_describe_error(exc, fragment):
    ep = endpoint(url="https://a.example/", timeout=2)
    assert fragment in hh.describe_error(exc, ep)


def test_describe_error_names_the_tls_name_on_verification_failure():
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_message = "unable to get local issuer certificate"
    ep = endpoint(url="https://10.0.0.1/", sni_host="api.example")
    assert hh.describe_error(exc, ep) == (
        "TLS certificate verification failed for api.example: unable to get local issuer certificate"
    )


# --------------------------------------------------------------------------- retries and deadline


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


def eps(*names):
    return [endpoint(name=n, host=n) for n in names]


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
        eps("a", "b"), retries=retries, delay=1, deadline=deadline, check=check, clock=clock, sleep=clock.sleep
    )
    results = run.run()
    assert run.rounds == rounds
    assert calls == attempts
    assert dict((r["name"], r["attempts"]) for r in results) == attempts
    assert [r["name"] for r in results] == ["a", "b"]


# --------------------------------------------------------------------------- distribution


@pytest.mark.parametrize(
    "value, server, tried",
    [
        ("10.0.0.1:3000", "10.0.0.1:3000", []),
        ("10.0.0.1:3000, 10.0.0.2:3000", "10.0.0.2:3000", ["10.0.0.1:3000"]),
        ("10.0.0.1:3000, 10.0.0.2:3000 : 10.0.0.9:80", "10.0.0.9:80", ["10.0.0.1:3000", "10.0.0.2:3000"]),
        ("[::1]:3000", "[::1]:3000", []),
        (" 10.0.0.1:3000 ", "10.0.0.1:3000", []),
        ("", None, []),
        ("-", None, []),
        (None, None, []),
    ],
)
def test_serving_upstream_takes_the_last_hop(value, server, tried):
    assert hh.serving_upstream(value) == (server, tried)


@pytest.mark.parametrize(
    "served, n_expected, tolerance, min_share, required",
    [
        (30, 3, None, None, 5.0),
        (30, 3, 0.5, None, 5.0),
        (30, 3, 0.2, None, 8.0),
        (30, 3, 0.0, None, 10.0),
        (60, 2, 0.1, None, 27.0),
        (40, 4, None, 20, 8.0),
        (40, 4, 0.9, 20, 8.0),
        (10, 0, None, None, 0.0),
    ],
)
def test_required_per_upstream(served, n_expected, tolerance, min_share, required):
    assert hh.required_per_upstream(served, n_expected, tolerance, min_share) == pytest.approx(required)


def tally(counts, failures=None, missing=0, requests=None):
    total = sum(counts.values()) + sum((failures or {}).values()) + missing
    return {
        "requests": requests or total,
        "counts": counts,
        "failures": failures or {},
        "missing_header": missing,
        "tried": {},
    }


EXP = ["a:1", "b:1", "c:1"]


@pytest.mark.parametrize(
    "t, kwargs, fragments",
    [
        (tally({"a:1": 10, "b:1": 10, "c:1": 10}), {}, []),
        # 5 is exactly (1 - 0.5) * 30 / 3: still fair
        (tally({"a:1": 5, "b:1": 12, "c:1": 13}), {}, []),
        (
            tally({"a:1": 4, "b:1": 13, "c:1": 13}),
            {},
            ["upstream a:1 served 4 of 30 requests (13.3%), below the minimum of 5"],
        ),
        (tally({"a:1": 8, "b:1": 11, "c:1": 11}), {"tolerance": 0.1}, ["upstream a:1 served 8 of 30"]),
        (
            tally({"a:1": 6, "b:1": 12, "c:1": 12}),
            {"min_share": 25},
            ["upstream a:1 served 6 of 30 requests (20.0%), below the minimum of 7.5 (min_share 25%)"],
        ),
        (tally({"b:1": 15, "c:1": 15}), {}, ["upstream a:1 served 0 of 30"]),
        (
            tally({"a:1": 10, "b:1": 10, "c:1": 6, "d:1": 4}),
            {"excluded": ["d:1"]},
            ["excluded upstream d:1 served 4 of 30 requests (13.3%)"],
        ),
        (tally({"a:1": 10, "b:1": 10, "c:1": 8, "x:1": 2}), {}, ["not listed in expected served requests: x:1 (2)"]),
        (tally({"a:1": 10, "b:1": 10, "c:1": 8, "x:1": 2}), {"allow_unexpected": True}, []),
        (tally({"a:1": 9, "b:1": 9, "c:1": 9}, missing=3), {}, ["3 of 30 responses had no X-Upstream-Addr header"]),
        (
            tally(
                {"a:1": 9, "b:1": 9, "c:1": 9}, failures={"connection refused": 2, "HTTP status 502, expected 200": 1}
            ),
            {},
            ["3 of 30 requests failed (connection refused x2, HTTP status 502, expected 200 x1)"],
        ),
        (tally({"a:1": 9, "b:1": 9, "c:1": 9}, failures={"connection refused": 3}), {"max_failures": 3}, []),
    ],
)
def test_evaluate_distribution(t, kwargs, fragments):
    kwargs.setdefault("expected", EXP)
    violations, summary = hh.evaluate_distribution(t, "X-Upstream-Addr", **kwargs)
    assert len(violations) == len(fragments), violations
    for fragment, violation in zip(fragments, violations):
        assert fragment in violation
    assert summary["ok"] is (not fragments)
    assert summary["counts"] == t["counts"]


def test_distribution_summary_shares_and_counts():
    summary = hh.evaluate_distribution(
        tally({"a:1": 20, "b:1": 10}, failures={"connection refused": 1}, missing=2), "X-Up", expected=["a:1", "b:1"]
    )[1]
    assert summary["shares"] == {"a:1": 66.7, "b:1": 33.3}
    assert (summary["requests"], summary["succeeded"], summary["failed"], summary["missing_header"]) == (33, 32, 1, 2)
    assert summary["required_per_upstream"] == 7.5


def test_collect_distribution_tallies_servers_failures_and_missing_headers():
    ep = endpoint(url="http://lb.example/health")
    answers = iter(
        [
            hh.Response(200, {"x-upstream-addr": "a:1"}, b"", 1.0),
            hh.Response(200, {"x-upstream-addr": "c:1, b:1"}, b"", 1.0),
            hh.Response(200, {}, b"", 1.0),
            hh.Response(502, {"x-upstream-addr": "a:1"}, b"", 1.0),
            hh.ProbeError("connection refused"),
            hh.Response(200, {"x-upstream-addr": "a:1"}, b"", 1.0),
        ]
    )

    def request(_ep):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    t = hh.collect_distribution(ep, 6, 1, "X-Upstream-Addr", request=request)
    assert t["counts"] == {"a:1": 2, "b:1": 1}
    assert t["failures"] == {"HTTP status 502, expected 200": 1, "connection refused": 1}
    assert t["missing_header"] == 1
    assert t["tried"] == {"c:1": 1}


# --------------------------------------------------------------------------- failure message


def test_failure_message_names_every_failing_endpoint_and_violation_once():
    results = [
        {"name": "good", "url": "http://a/", "ok": True, "error": None},
        {"name": "down", "url": "http://b/", "ok": False, "error": "connection refused"},
        {"name": "sick", "url": "http://c/", "ok": False, "error": "HTTP status 503, expected 200"},
    ]
    dist = {"violations": ["excluded upstream d:1 served 4 of 30 requests (13.3%)", "2 of 30 requests failed"]}
    msg = hh.build_failure_message(results, 3, 4.25, dist, "http://lb/health")
    assert msg == (
        "2 of 3 endpoints unhealthy after 3 attempts in 4.2 s: down (http://b/): connection refused; "
        "sick (http://c/): HTTP status 503, expected 200 | distribution through http://lb/health: "
        "excluded upstream d:1 served 4 of 30 requests (13.3%); 2 of 30 requests failed"
    )
    assert "good" not in msg


def test_failure_message_without_distribution_problems():
    results = [{"name": "x", "url": "http://x/", "ok": False, "error": "timed out after 1 s"}]
    assert hh.build_failure_message(results, 1, 1.0, {"violations": []}, "http://lb/") == (
        "1 of 1 endpoint unhealthy after 1 attempt in 1.0 s: x (http://x/): timed out after 1 s"
    )


# --------------------------------------------------------------------------- the module's own validation


class FakeModule:
    def __init__(self, params):
        self.params = params


def module_params(**raw):
    validated = ArgumentSpecValidator(upstream_health.argument_spec()).validate(raw)
    assert validated.error_messages == []
    return validated.validated_parameters


def test_module_reports_every_invalid_argument_in_one_message_before_any_request(monkeypatch):
    def no_requests(*_args, **_kwargs):
        raise AssertionError("no request may be sent when the arguments are invalid")

    monkeypatch.setattr(hh, "http_request", no_requests)
    params = module_params(
        endpoints=[{"url": "ftp://a/"}, {"host": "b", "method": "HEAD", "json": {"status": "ok"}}],
        max_workers=0,
        distribution={"url": "http://lb/", "count": 0, "tolerance": 1.5, "expected": ["a:1"], "excluded": ["a:1"]},
    )
    result, ok = upstream_health.UpstreamHealth(FakeModule(params)).run()
    assert ok is False and result["changed"] is False
    msg = result["msg"]
    assert msg.startswith("invalid arguments: ")
    for fragment in (
        "endpoints[0]: url 'ftp://a/' must start with http:// or https://",
        "endpoints[1]: json and return_body_fields need a response body",
        "max_workers must be at least 1",
        "distribution: count must be at least 1",
        "distribution: tolerance must be in [0, 1)",
        "distribution: a:1 cannot be both expected and excluded",
    ):
        assert fragment in msg


def test_module_requires_something_to_check():
    result, ok = upstream_health.UpstreamHealth(FakeModule(module_params())).run()
    assert ok is False and "nothing to check" in result["msg"]


def test_module_distribution_does_not_inherit_json_expectations():
    params = module_params(json={"status": "ok"}, distribution={"url": "http://lb/", "method": "HEAD"})
    _endpoints, dist, errors = upstream_health.UpstreamHealth(FakeModule(params)).validate()
    assert errors == [] and dist.json == {} and dist.method == "HEAD"


def test_module_documentation_lists_every_option():
    import yaml

    doc = yaml.safe_load(upstream_health.DOCUMENTATION)
    spec = upstream_health.argument_spec()
    assert set(doc["options"]) == set(spec)
    for section in ("endpoints", "distribution"):
        assert set(doc["options"][section]["suboptions"]) == set(spec[section]["options"])
    assert documented_attributes(doc)["check_mode"]["support"] == "full"
    yaml.safe_load(upstream_health.EXAMPLES)
    ret = yaml.safe_load(upstream_health.RETURN)
    assert {"endpoints", "healthy", "failing", "attempts", "elapsed_ms", "distribution", "msg"} <= set(ret)


def documented_attributes(doc):
    """The module's attributes, including those it takes from the collection's doc fragment."""
    import yaml

    from ansible_collections.ywmessaging.scaling.plugins.doc_fragments.read_only import ModuleDocFragment

    attributes = dict(doc.get("attributes", {}))
    if "ywmessaging.scaling.read_only" in doc.get("extends_documentation_fragment", []):
        attributes.update(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["attributes"])
    return attributes
