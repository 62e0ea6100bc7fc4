# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resolving a target over the module-level options, SNI/Host, error reasons (module_utils/http_target.py).

What the argument spec enforces (types, choices, url xor host) is tested against the spec in
tests/unit/plugins/modules/test_upstream_health.py; here ``own`` is what the spec lets through.
"""

import socket
import ssl

import pytest

from ansible_collections.ywmessaging.scaling.plugins.module_utils import http_target as ht

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
OWN_KEYS = ("name", "url", "host") + tuple(DEFAULTS)


def own(**raw):
    """An endpoint as the argument spec leaves it: every option present, None when not given."""
    return dict(dict.fromkeys(OWN_KEYS), **raw)


def endpoint(**raw):
    target, errors = ht.resolve(own(**raw), DEFAULTS, "endpoints[0]")
    assert errors == []
    return target


def errors_for(raw, **defaults):
    target, errors = ht.resolve(own(**raw), dict(DEFAULTS, **defaults), "endpoints[0]")
    assert target is None
    return " | ".join(errors)


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
def test_resolve_forms(raw, scheme, host, port, path, url):
    ep = endpoint(**raw)
    assert (ep.scheme, ep.host, ep.port, ep.path) == (scheme, host, port, path)
    if url:
        assert ep.url == url


def test_module_level_defaults_apply_and_endpoint_values_win():
    defaults = dict(DEFAULTS, port=3000, path="/health", json={"status": "ok"}, headers={"X-A": "1", "X-B": "1"})
    inherited = ht.resolve(own(host="10.0.0.1"), defaults, "e")[0]
    mine = ht.resolve(own(host="10.0.0.2", port=3001, json={"ready": True}, headers={"X-B": "2"}), defaults, "e")[0]
    assert (inherited.port, inherited.path, inherited.json) == (3000, "/health", {"status": "ok"})
    # json is replaced, not merged; headers are merged with the endpoint winning.
    assert (mine.port, mine.json) == (3001, {"ready": True})
    assert mine.headers == {"X-A": "1", "X-B": "2"}


@pytest.mark.parametrize(
    "key, top, mine",
    [
        ("method", "HEAD", "GET"),
        ("status_codes", [204], [200, 301]),
        ("timeout", 2.0, 7.5),
        ("validate_certs", False, True),
        ("sni_host", "top.example", "mine.example"),
        ("host_header", "top.example", "mine.example"),
        ("return_body_fields", ["uptime"], ["version"]),
    ],
)
def test_every_connection_option_is_inherited_and_can_be_overridden(key, top, mine):
    defaults = dict(DEFAULTS, **{key: top})
    assert getattr(ht.resolve(own(url="https://a/"), defaults, "e")[0], key) == top
    assert getattr(ht.resolve(own(url="https://a/", **{key: mine}), defaults, "e")[0], key) == mine


def test_url_endpoints_ignore_module_level_scheme_port_and_path():
    ep, errors = ht.resolve(own(url="http://a.example:81/x"), dict(DEFAULTS, scheme="https", port=3000, path="/h"), "e")
    assert errors == [] and (ep.scheme, ep.port, ep.path) == ("http", 81, "/x")


def test_endpoint_is_named_by_url_when_unnamed():
    assert endpoint(url="http://a.example/health").name == "http://a.example/health"
    assert endpoint(host="a.example", port=3000).name == "http://a.example:3000/"
    assert endpoint(name="mine", host="a.example").name == "mine"


@pytest.mark.parametrize(
    "raw, defaults, fragment",
    [
        ({"url": "ftp://a/"}, {}, "must start with http:// or https://"),
        ({"url": "a.example/health"}, {}, "must start with http:// or https://"),
        ({"url": "http://u:p@a/"}, {}, "must not carry credentials"),
        ({"url": "http://a:99999/"}, {}, "invalid port"),
        ({"url": "http:///health"}, {}, "has no host"),
        ({"host": "a", "port": 0}, {}, "out of range"),
        ({"host": "a", "port": 65536}, {}, "out of range"),
        ({"host": "a", "path": "health"}, {}, "must start with /"),
        ({"host": "a"}, {"path": "health"}, "must start with /"),
        ({"host": "a", "path": ""}, {}, "path '' must start with /"),
        ({"host": "a", "method": "HEAD", "json": {"status": "ok"}}, {}, "use method GET"),
        ({"host": "a", "return_body_fields": ["x"]}, {"method": "HEAD"}, "use method GET"),
        ({"host": "a"}, {"method": "HEAD", "json": {"status": "ok"}}, "use method GET"),
        ({"host": "a", "status_codes": [200, 42]}, {}, "got 42"),
        ({"host": "a"}, {"status_codes": [600]}, "got 600"),
        ({"host": "a", "json": {"a..b": 1}}, {}, "json path 'a..b'"),
        ({"host": "a", "return_body_fields": [""]}, {}, "return_body_fields entry ''"),
        ({"host": "a", "timeout": 0}, {}, "timeout must be greater than 0"),
        ({"host": "a", "sni_host": "api.example"}, {}, "sni_host only applies to https"),
        ({"url": "http://a/", "ca_path": "/etc"}, {}, "ca_path only applies to https"),
        ({"url": "https://a/", "ca_path": "/nonexistent/ca.pem"}, {}, "ca_path /nonexistent/ca.pem does not exist"),
    ],
)
def test_resolve_rejects_what_the_argument_spec_cannot(raw, defaults, fragment):
    assert fragment in errors_for(raw, **defaults)


def test_errors_name_the_endpoint_and_every_problem():
    target, errors = ht.resolve(own(host="a", timeout=-1, status_codes=[42]), DEFAULTS, "endpoints[3] (db)")
    assert target is None and len(errors) == 2
    assert all(e.startswith("endpoints[3] (db): ") for e in errors)


def test_head_endpoint_does_not_inherit_body_expectations():
    defaults = dict(DEFAULTS, json={"status": "ok"}, return_body_fields=["uptime"])
    ep, errors = ht.resolve(own(host="a", method="HEAD"), defaults, "e")
    assert errors == [] and ep.json == {} and ep.return_body_fields == []


def test_tls_defaults_are_ignored_for_plain_http_endpoints():
    ep, errors = ht.resolve(own(host="a"), dict(DEFAULTS, sni_host="api.example", ca_path="/nonexistent"), "e")
    assert errors == [] and ep.sni_host is None and ep.ca_path is None


@pytest.mark.parametrize(
    "raw, host_header, server_name",
    [
        ({"url": "https://10.0.0.5/h"}, None, "10.0.0.5"),
        ({"url": "https://10.0.0.5/h", "sni_host": "api.example"}, "api.example", "api.example"),
        ({"url": "https://10.0.0.5:8443/h", "sni_host": "api.example"}, "api.example:8443", "api.example"),
        ({"url": "https://10.0.0.5/h", "host_header": "api.example:443"}, "api.example:443", "api.example"),
        ({"url": "https://10.0.0.5/h", "host_header": "[::1]:443"}, "[::1]:443", "::1"),
        ({"url": "https://10.0.0.5/h", "sni_host": "a.example", "host_header": "b.example"}, "b.example", "a.example"),
        ({"url": "http://10.0.0.5/h", "host_header": "api.example"}, "api.example", "api.example"),
    ],
)
def test_sni_and_host_header(raw, host_header, server_name):
    ep = endpoint(**raw)
    assert ep.request_headers().get("Host") == host_header
    assert ep.server_name == server_name


def test_host_header_replaces_a_host_given_in_headers():
    ep = endpoint(url="http://10.0.0.5/", headers={"host": "old"}, host_header="new")
    assert [v for k, v in ep.request_headers().items() if k.lower() == "host"] == ["new"]


@pytest.mark.parametrize(
    "validate, ca_path, verify_mode, check_hostname",
    [(True, None, ssl.CERT_REQUIRED, True), (False, None, ssl.CERT_NONE, False)],
)
def test_ssl_context(validate, ca_path, verify_mode, check_hostname):
    context = endpoint(url="https://a/", validate_certs=validate, ca_path=ca_path).ssl_context()
    assert (context.verify_mode, context.check_hostname) == (verify_mode, check_hostname)


@pytest.mark.parametrize(
    "exc, fragment",
    [
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (socket.timeout("timed out"), "timed out after 2 s"),
        (TimeoutError("timed out"), "timed out after 2 s"),
        (ssl.SSLError(1, "_ssl.c: The handshake operation timed out"), "timed out after 2 s (TLS handshake)"),
        (ConnectionResetError(104, "reset"), "connection reset by peer"),
        (socket.gaierror(-2, "Name or service not known"), "cannot resolve a.example: Name or service not known"),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "TLS error"),
        (OSError(113, "No route to host"), "connection error: No route to host"),
        (ValueError("odd"), "unexpected error: ValueError: odd"),
    ],
)
def test_describe_error(exc, fragment):
    ep = endpoint(url="https://a.example/", timeout=2)
    assert fragment in ht.describe_error(exc, ep)


def test_describe_error_names_the_tls_name_on_verification_failure():
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_message = "unable to get local issuer certificate"
    ep = endpoint(url="https://10.0.0.1/", sni_host="api.example")
    assert ht.describe_error(exc, ep) == (
        "TLS certificate verification failed for api.example: unable to get local issuer certificate"
    )


@pytest.mark.parametrize(
    "status, accepted, text",
    [(503, [200], "HTTP status 503, expected 200"), (500, [200, 204], "HTTP status 500, expected one of 200, 204")],
)
def test_status_problem(status, accepted, text):
    assert ht.status_problem(status, accepted) == text
