# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for ywmessaging.scaling.upstream_health itself: its argument spec, the checks the spec
cannot express, its message and its documentation. The helpers have their own tests under
tests/unit/plugins/module_utils/test_http_*.py."""

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.ywmessaging.scaling.plugins.doc_fragments import http_connection, read_only
from ansible_collections.ywmessaging.scaling.plugins.module_utils import http_target
from ansible_collections.ywmessaging.scaling.plugins.modules import upstream_health


class FakeModule:
    def __init__(self, params):
        self.params = params


def validated(**raw):
    return ArgumentSpecValidator(upstream_health.argument_spec()).validate(raw)


def module_params(**raw):
    result = validated(**raw)
    assert result.error_messages == []
    return result.validated_parameters


# --------------------------------------------------------------------------- the argument spec


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"endpoints": [{"name": "x"}]}, "one of the following is required: url, host found in endpoints"),
        ({"endpoints": [{"url": "http://a/", "host": "b"}]}, "mutually exclusive: url|host found in endpoints"),
        ({"endpoints": [{"url": "http://a/", "port": 81}]}, "mutually exclusive: url|port found in endpoints"),
        ({"endpoints": [{"url": "http://a/", "path": "/x"}]}, "mutually exclusive: url|path found in endpoints"),
        ({"endpoints": [{"url": "http://a/", "scheme": "https"}]}, "mutually exclusive: url|scheme"),
        ({"endpoints": [{"host": "a", "method": "POST"}]}, "value of method must be one of: GET, HEAD, got: POST"),
        ({"endpoints": [{"host": "a", "scheme": "ftp"}]}, "value of scheme must be one of: http, https, got: ftp"),
        ({"endpoints": [{"host": "a", "port": "web"}]}, "port"),
        ({"endpoints": [{"host": "a", "status_codes": ["ok"]}]}, "status_codes"),
        ({"endpoints": [{"host": "a", "bogus": 1}]}, "bogus"),
        ({"method": "POST", "endpoints": [{"host": "a"}]}, "value of method must be one of: GET, HEAD"),
        ({"timeout": "soon", "endpoints": [{"host": "a"}]}, "timeout"),
        ({"distribution": {"count": 3}}, "one of the following is required: url, host found in distribution"),
        ({"distribution": {"url": "http://a/", "host": "b"}}, "mutually exclusive: url|host found in distribution"),
        (
            {"distribution": {"url": "http://a/", "tolerance": 0.2, "min_share": 20}},
            "mutually exclusive: tolerance|min_share found in distribution",
        ),
        (
            {"distribution": {"url": "http://a/", "weights": {"a:1": 2}, "min_share": 20}},
            "mutually exclusive: weights|min_share found in distribution",
        ),
        ({"distribution": {"url": "http://a/", "count": "many"}}, "count"),
    ],
)
def test_argument_spec_rejects(raw, fragment):
    messages = " | ".join(validated(**raw).error_messages)
    assert fragment in messages


def test_argument_spec_gives_the_documented_defaults():
    p = module_params(endpoints=[{"host": "a"}])
    assert (p["scheme"], p["path"], p["method"], p["status_codes"], p["timeout"]) == ("http", "/", "GET", [200], 5.0)
    assert (p["validate_certs"], p["headers"], p["json"], p["max_workers"], p["delay"]) == (True, {}, {}, 16, 1.0)
    # endpoint-level options stay unset so that the module-level ones apply
    assert all(
        p["endpoints"][0][key] is None
        for key in upstream_health.argument_spec()["endpoints"]["options"]
        if key != "host"
    )


# --------------------------------------------------------------------------- what the spec cannot say


def test_module_reports_every_invalid_argument_in_one_message_before_any_request(monkeypatch):
    def no_requests(*_args, **_kwargs):
        raise AssertionError("no request may be sent when the arguments are invalid")

    monkeypatch.setattr(http_target, "http_request", no_requests)
    params = module_params(
        endpoints=[{"url": "ftp://a/"}, {"host": "b", "method": "HEAD", "json": {"status": "ok"}}],
        max_workers=0,
        distribution={
            "url": "http://lb/",
            "count": 0,
            "tolerance": 1.5,
            "expected": ["a:1"],
            "excluded": ["a:1"],
            "weights": {"z:1": 2},
        },
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
        "distribution: weights: z:1 must be an expected upstream with a weight above 0",
    ):
        assert fragment in msg


@pytest.mark.parametrize(
    "option, value, fragment",
    [
        ("retries", -1, "retries must be at least 0, got -1"),
        ("delay", -0.5, "delay must be at least 0, got -0.5"),
        ("deadline", -1, "deadline must be at least 0, got -1.0"),
    ],
)
def test_module_rejects_negative_round_options(option, value, fragment):
    params = module_params(endpoints=[{"host": "a"}], **{option: value})
    assert fragment in " | ".join(upstream_health.UpstreamHealth(FakeModule(params)).validate()[2])


@pytest.mark.parametrize(
    "dist, fragment",
    [
        ({"concurrency": 0}, "distribution: concurrency must be at least 1, got 0"),
        ({"max_failures": -1}, "distribution: max_failures must be at least 0, got -1"),
        ({"min_share": 120}, "distribution: min_share is a percentage (0-100), got 120"),
        ({"header": ""}, "distribution: header must not be empty"),
        (
            {"expected": ["a:1"], "weights": {"a:1": 0}},
            "weights: a:1 must be an expected upstream with a weight above 0",
        ),
        ({"expected": ["a:1"], "weights": {"a:1": "x"}}, "weights: a:1 must be an expected upstream"),
        ({"sni_host": "api.example"}, "distribution: sni_host only applies to https endpoints"),
    ],
)
def test_module_rejects_bad_distribution_settings(dist, fragment):
    params = module_params(distribution=dict(dist, url="http://lb/"))
    assert fragment in " | ".join(upstream_health.UpstreamHealth(FakeModule(params)).validate()[2])


def test_module_takes_weights_given_as_strings():
    params = module_params(distribution={"url": "http://lb/", "expected": ["a:1", "b:1"], "weights": {"a:1": "3"}})
    assert upstream_health.UpstreamHealth(FakeModule(params)).validate()[2] == []
    assert params["distribution"]["weights"] == {"a:1": 3.0}


def test_module_reports_every_endpoint_error_and_duplicate_names():
    params = module_params(
        endpoints=[
            {"name": "one", "host": "a"},
            {"name": "one", "host": "b"},
            {"name": "bad", "url": "ftp://x/"},
            {"host": "c", "timeout": -1},
        ]
    )
    endpoints, _dist, errors = upstream_health.UpstreamHealth(FakeModule(params)).validate()
    assert [e.name for e in endpoints] == ["one"]
    assert len(errors) == 3
    assert "endpoints[1]" in errors[0] and "already used" in errors[0]
    assert errors[1].startswith("endpoints[2] (bad):")
    assert errors[2].startswith("endpoints[3]:")


def test_module_requires_something_to_check():
    for params in (module_params(), module_params(endpoints=[])):
        result, ok = upstream_health.UpstreamHealth(FakeModule(params)).run()
        assert ok is False and "nothing to check" in result["msg"]


def test_module_distribution_does_not_inherit_json_expectations():
    params = module_params(json={"status": "ok"}, distribution={"url": "http://lb/", "method": "HEAD"})
    _endpoints, dist, errors = upstream_health.UpstreamHealth(FakeModule(params)).validate()
    assert errors == [] and dist.json == {} and dist.method == "HEAD" and dist.name == "distribution"


def test_module_distribution_takes_connection_options_from_the_top_level():
    params = module_params(
        sni_host="api.example", headers={"X-A": "1"}, timeout=2, distribution={"url": "https://lb/", "headers": {}}
    )
    dist = upstream_health.UpstreamHealth(FakeModule(params)).validate()[1]
    assert (dist.sni_host, dist.headers, dist.timeout) == ("api.example", {"X-A": "1"}, 2.0)


# --------------------------------------------------------------------------- the message


def test_failure_message_names_every_failing_endpoint_and_violation_once():
    results = [
        {"name": "good", "url": "http://a/", "ok": True, "error": None},
        {"name": "down", "url": "http://b/", "ok": False, "error": "connection refused"},
        {"name": "sick", "url": "http://c/", "ok": False, "error": "HTTP status 503, expected 200"},
    ]
    dist = {
        "url": "http://lb/health",
        "violations": ["excluded upstream d:1 served 4 of 30 requests (13.3%)", "2 of 30 requests failed"],
    }
    msg = upstream_health.build_message(results, 3, 4.25, dist)
    assert msg == (
        "2 of 3 endpoints unhealthy after 3 attempts in 4.2 s: down (http://b/): connection refused; "
        "sick (http://c/): HTTP status 503, expected 200 | distribution through http://lb/health: "
        "excluded upstream d:1 served 4 of 30 requests (13.3%); 2 of 30 requests failed"
    )
    assert "good" not in msg


def test_failure_message_without_distribution_problems():
    results = [{"name": "x", "url": "http://x/", "ok": False, "error": "timed out after 1 s"}]
    assert upstream_health.build_message(results, 1, 1.0, {"url": "http://lb/", "violations": [], "counts": {}}) == (
        "1 of 1 endpoint unhealthy after 1 attempt in 1.0 s: x (http://x/): timed out after 1 s"
    )


def test_success_message_summarises_endpoints_and_distribution():
    results = [{"name": "x", "url": "http://x/", "ok": True, "error": None}]
    dist = {"url": "http://lb/", "violations": [], "counts": {"b:1": 4, "a:1": 6}}
    assert upstream_health.build_message(results, 1, 0.1, dist) == "1 endpoint healthy; distribution ok: a:1=6, b:1=4"
    assert upstream_health.build_message(results * 2, 1, 0.1) == "2 endpoints healthy"


# --------------------------------------------------------------------------- documentation


def fragment(module):
    return yaml.safe_load(module.ModuleDocFragment.DOCUMENTATION)


def documented(doc):
    """The module's documentation with the collection's doc fragments merged in, as ansible-doc does."""
    options, attributes = dict(doc["options"]), dict(doc.get("attributes", {}))
    names = doc.get("extends_documentation_fragment", [])
    for name, module in (("read_only", read_only), ("http_connection", http_connection)):
        if "ywmessaging.scaling." + name in names:
            options.update(fragment(module).get("options", {}))
            attributes.update(fragment(module).get("attributes", {}))
    return options, attributes


def test_module_documentation_lists_every_option():
    doc = yaml.safe_load(upstream_health.DOCUMENTATION)
    options, attributes = documented(doc)
    spec = upstream_health.argument_spec()
    assert set(options) == set(spec)
    for section in ("endpoints", "distribution"):
        assert set(doc["options"][section]["suboptions"]) == set(spec[section]["options"])
    assert attributes["check_mode"]["support"] == "full"
    yaml.safe_load(upstream_health.EXAMPLES)
    ret = yaml.safe_load(upstream_health.RETURN)
    assert {"endpoints", "healthy", "failing", "attempts", "elapsed_ms", "distribution", "msg"} <= set(ret)
    assert {"ok", "counts", "shares", "requests", "violations", "required"} <= set(ret["distribution"]["contains"])


def test_connection_fragment_documents_the_spec_once_with_its_types_and_defaults():
    documented_options = fragment(http_connection)["options"]
    spec = upstream_health.argument_spec()
    for name, doc in documented_options.items():
        assert doc["type"] == spec[name]["type"], name
        assert doc.get("default") == spec[name].get("default"), name
        assert doc.get("choices") == spec[name].get("choices"), name
        # every endpoint and the distribution may override it, with the same type
        for section in ("endpoints", "distribution"):
            assert spec[section]["options"][name]["type"] == doc["type"], (section, name)
    # documented once: the module's own options do not repeat them
    assert not set(documented_options) & set(yaml.safe_load(upstream_health.DOCUMENTATION)["options"])


DOC_KEYS = {"description", "type", "elements", "choices", "default", "suboptions", "required", "returned", "sample"}


def entries(options, where):
    for name, entry in options.items():
        yield "%s.%s" % (where, name), entry
        for nested in ("suboptions", "contains"):
            yield from entries(entry.get(nested) or {}, "%s.%s" % (where, name))


@pytest.mark.parametrize("section", ["DOCUMENTATION", "RETURN"])
def test_every_documented_entry_has_only_known_keys(section):
    """Short entries are written in YAML flow style, where a stray comma makes a new key silently."""
    doc = yaml.safe_load(getattr(upstream_health, section))
    for where, entry in entries(doc["options"] if section == "DOCUMENTATION" else doc, section):
        assert isinstance(entry, dict) and set(entry) <= DOC_KEYS | {"contains"}, (where, entry)
        assert isinstance(entry["description"], (str, list)), where
