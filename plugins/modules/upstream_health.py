# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: upstream_health
short_description: Check many HTTP health endpoints concurrently and measure load-balancer distribution
version_added: "0.1.0"
description:
  - Sends HTTP(S) requests to a list of health endpoints at the same time (a thread pool) and checks each
    answer against its expectations - accepted status codes and JSON fields picked by dotted paths.
  - Endpoints that fail are checked again after I(delay) seconds, up to I(retries) times and/or until
    I(deadline) seconds have passed, so one task can wait for a rolling restart to settle.
  - In distribution mode it sends I(distribution.count) requests to one URL through the load balancer, reads
    which upstream served each one from a response header (C(X-Upstream-Addr) by default), and checks that
    every expected upstream got its fair share, that no excluded (drained or stopped) upstream served any,
    and that the requests succeeded.
  - Fails with one message that names every failing endpoint and every distribution violation, and why
    (status, timeout, connection refused, TLS error, JSON field with expected and actual value).
  - Uses only the Python standard library on the managed host. Requests go straight to the endpoint; proxy
    environment variables are ignored. Redirects are not followed (a 301 is status 301).
  - B(Which options an endpoint overrides.) The connection options I(scheme), I(port), I(path), I(method),
    I(status_codes), I(timeout), I(validate_certs), I(ca_path), I(sni_host), I(host_header) and I(headers)
    are given at the top level as defaults; each endpoint, and I(distribution), may set any of them for
    itself, which replaces the top-level value - except I(headers), which are merged (the endpoint's value
    wins for the same header). I(scheme), I(port) and I(path) apply to targets given by I(host) only; a
    I(url) carries its own. Top-level I(ca_path) and I(sni_host) are ignored for http targets.
  - Endpoints also take the top-level I(json) and I(return_body_fields) unless they set their own, or set
    I(method=HEAD) themselves (HEAD gets no body). I(distribution) takes neither.
author:
  - ywmessaging.scaling contributors (@ywmessaging)
extends_documentation_fragment:
  - ywmessaging.scaling.read_only
  - ywmessaging.scaling.http_connection
options:
  endpoints:
    description:
      - The endpoints to check. Each needs I(url), or I(host) with optional I(port), I(path) and I(scheme),
        and may override any connection option (see the description).
      - Names must be unique; an endpoint without I(name) is named by its URL.
    type: list
    elements: dict
    default: []
    suboptions:
      name: {description: Label used in results and in the failure message., type: str}
      url:
        description: Full C(http://) or C(https://) URL. Mutually exclusive with I(host), I(port), I(path), I(scheme).
        type: str
      host: {description: Host name or address to connect to (IPv6 with or without brackets)., type: str}
      json: {description: 'Replaces the top-level I(json); C({}) checks no field.', type: dict}
      return_body_fields: {description: Replaces the top-level I(return_body_fields)., type: list, elements: str}
      scheme: {description: Overrides the top-level option., type: str, choices: [http, https]}
      port: {description: Overrides the top-level option., type: int}
      path: {description: Overrides the top-level option., type: str}
      method: {description: Overrides the top-level option., type: str, choices: [GET, HEAD]}
      status_codes: {description: Overrides the top-level option., type: list, elements: int}
      timeout: {description: Overrides the top-level option., type: float}
      validate_certs: {description: Overrides the top-level option., type: bool}
      ca_path: {description: Overrides the top-level option; an error on an http endpoint., type: path}
      sni_host: {description: Overrides the top-level option; an error on an http endpoint., type: str}
      host_header: {description: Overrides the top-level option., type: str}
      headers: {description: Merged over the top-level option., type: dict}
  json:
    description:
      - 'Expected JSON body fields, as a mapping of dotted path to expected value, for example
        C({status: ok, checks.database: ok}). A numeric key indexes a list (C(items.0.state)); write
        C(\.) for a dot inside a key.'
      - Types must match (C(true) is not C(1)), except that a string expectation also matches a
        number, boolean or null with the same JSON spelling.
    type: dict
    default: {}
  return_body_fields:
    description: Dotted paths of extra body fields to return in RV(endpoints[].fields), unchecked.
    type: list
    elements: str
    default: []
  max_workers: {description: Endpoints checked at the same time., type: int, default: 16}
  retries:
    description:
      - How many more times to check an endpoint that failed. Unset means 0 without I(deadline) and
        unlimited (until the deadline) with it. With both, checking stops at whichever comes first.
    type: int
  delay: {description: Seconds between two rounds of checks of the failing endpoints., type: float, default: 1}
  deadline:
    description:
      - Keep re-checking failing endpoints until all are healthy or this many seconds have passed. No new
        round starts after the deadline; the last round can overrun it by up to I(timeout).
    type: float
  distribution:
    description:
      - Measure how a load balancer spreads requests over its upstreams. Runs once, after the endpoint
        checks. Needs I(url), or I(host) with optional I(port), I(path), I(scheme); overrides connection
        options like an endpoint.
      - The balancer must name the serving upstream in a response header, for nginx
        C(add_header X-Upstream-Addr $upstream_addr always;). When nginx retried a request on another
        upstream (C(a:3000, b:3000)) the last one is counted as serving it.
      - Each upstream in I(expected) must serve at least I(min_share) percent of the served requests (those
        answered naming an upstream) or, without I(min_share), its fair share less I(tolerance) of it. The fair
        share is C(served * weight / sum of weights), every weight 1 unless I(weights) says otherwise. Four equal
        upstreams each need 12.5% with the default tolerance, 20% with C(tolerance=0.2), so a fair 24% passes.
    type: dict
    suboptions:
      url: {description: URL to send the requests to (the load balancer)., type: str}
      host: {description: Load balancer host or address., type: str}
      scheme: {description: Overrides the top-level option., type: str, choices: [http, https]}
      port: {description: Overrides the top-level option., type: int}
      path: {description: Overrides the top-level option., type: str}
      method: {description: 'Overrides the top-level option (HEAD will do).', type: str, choices: [GET, HEAD]}
      status_codes: {description: Overrides the top-level option (statuses that succeed)., type: list, elements: int}
      timeout: {description: Overrides the top-level option., type: float}
      validate_certs: {description: Overrides the top-level option., type: bool}
      ca_path: {description: Overrides the top-level option; an error for http., type: path}
      sni_host: {description: Overrides the top-level option; an error for http., type: str}
      host_header: {description: Overrides the top-level option., type: str}
      headers: {description: Merged over the top-level option., type: dict}
      count: {description: Number of requests to send., type: int, default: 30}
      concurrency: {description: Requests in flight at the same time., type: int, default: 1}
      header: {description: Response header naming the upstream that served it., type: str, default: X-Upstream-Addr}
      expected:
        description:
          - Upstreams, written as the balancer reports them (nginx C($upstream_addr) gives C(ip:port)), that
            must each get their share.
        type: list
        elements: str
        default: []
      excluded: {description: Upstreams (drained or stopped) to serve none., type: list, elements: str, default: []}
      tolerance:
        description:
          - Allowed shortfall from the fair share, between 0 and 1. C(0.5) accepts an upstream that served half
            of its fair share. Defaults to C(0.5). Mutually exclusive with I(min_share).
        type: float
      min_share:
        description:
          - Minimum percentage (0-100) of the served requests that each expected upstream must serve, instead of
            the fair share. Mutually exclusive with I(tolerance) and I(weights).
        type: float
      weights:
        description:
          - Relative weights of expected upstreams (as in nginx C(server ... weight=N)), for the fair share; an
            expected upstream not listed weighs 1. Every key must be in I(expected), every value above 0.
        type: dict
      max_failures: {description: Requests allowed to fail (error or unaccepted status)., type: int, default: 0}
      allow_unexpected: {description: Accept upstreams not in I(expected) or I(excluded)., type: bool, default: false}
notes:
  - Request bodies are read up to 1 MiB.
seealso:
  - module: ansible.builtin.uri
  - module: ansible.builtin.wait_for
"""

EXAMPLES = r"""
- name: All backends answer /health with status ok (by address, directly)
  ywmessaging.scaling.upstream_health:
    endpoints:
      - {name: backend-1, host: 10.0.1.11}
      - {name: backend-2, host: 10.0.1.12}
      - {name: backend-3, host: 10.0.1.13}
    port: 3000
    path: /health
    json:
      status: ok

- name: Detailed health, waiting up to 60 s for a rolling restart to settle
  ywmessaging.scaling.upstream_health:
    endpoints: "{{ groups['backend'] | map('extract', hostvars, 'ansible_host')
                   | map('community.general.dict_kv', 'host') }}"
    port: 3000
    path: /health/detailed
    json:
      status: healthy
      checks.database: ok
      checks.redis: ok
    return_body_fields: [uptime]
    deadline: 60
    delay: 3

- name: The public name through the balancer, by the balancer's address, with our CA
  ywmessaging.scaling.upstream_health:
    endpoints:
      - name: lb-health
        url: https://203.0.113.10/health
        sni_host: api.example.com
        ca_path: /etc/ssl/certs/internal-ca.pem
      - name: lb-ready
        url: https://203.0.113.10/health/ready
        sni_host: api.example.com
        json: {ready: true}
    retries: 5
    delay: 2

- name: Traffic is spread by weight over two backends and none reaches the drained one
  ywmessaging.scaling.upstream_health:
    distribution:
      url: https://api.example.com/health
      count: 60
      concurrency: 4
      expected: [10.0.1.11:3000, 10.0.1.12:3000]
      weights: {"10.0.1.12:3000": 2}  # nginx: server 10.0.1.12:3000 weight=2;
      excluded: [10.0.1.13:3000]
      tolerance: 0.3
"""

RETURN = r"""
endpoints:
  description: One entry per endpoint, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: The endpoint's name., type: str, sample: backend-1}
    url:
      description: The URL that was requested (the address connected to, not the SNI name).
      type: str
      sample: http://10.0.1.11:3000/health
    ok: {description: Whether the last attempt met every expectation., type: bool, sample: true}
    status: {description: HTTP status of the last attempt; null when no response came., type: int, sample: 200}
    latency_ms:
      description: Milliseconds from connecting to having read the body, in the last attempt.
      type: float
      sample: 12.4
    attempts: {description: How many times this endpoint was checked., type: int, sample: 1}
    fields:
      description: The checked I(json) fields and the I(return_body_fields) as found in the body (null when absent).
      type: dict
      sample: {status: ok, checks.database: ok}
    error:
      description: Why the last attempt failed, every problem separated by C(; ); null when it passed.
      type: str
      sample: "HTTP status 503, expected 200; json field 'status' is \"degraded\", expected \"ok\""
healthy: {description: Names of the endpoints that passed., returned: always, type: list, elements: str, sample: [b-1]}
failing: {description: Names of the endpoints that failed., returned: always, type: list, elements: str, sample: [b-3]}
attempts: {description: Rounds of checks run (1 when all passed at once)., returned: always, type: int, sample: 1}
elapsed_ms: {description: Wall time of the whole task in milliseconds., returned: always, type: float, sample: 215.3}
distribution:
  description: Result of distribution mode.
  returned: when I(distribution) is set
  type: dict
  contains:
    url: {description: URL the requests were sent to., type: str, sample: "https://api.example.com/health"}
    header: {description: Header read for the upstream., type: str, sample: X-Upstream-Addr}
    requests: {description: Requests sent., type: int, sample: 30}
    succeeded: {description: Requests answered with an accepted status., type: int, sample: 30}
    failed: {description: Requests that failed (no response or an unaccepted status)., type: int, sample: 0}
    failures: {description: Failed requests counted by reason., type: dict, sample: {"connection refused": 2}}
    missing_header: {description: Successful responses without the upstream header., type: int, sample: 0}
    counts: {description: Requests per upstream., type: dict, sample: {"10.0.1.11:3000": 15, "10.0.1.12:3000": 15}}
    shares: {description: Percentage of the served requests per upstream., type: dict, sample: {"10.0.1.11:3000": 50.0}}
    expected: {description: The expected upstreams., type: list, elements: str, sample: ["10.0.1.11:3000"]}
    excluded: {description: The excluded upstreams., type: list, elements: str, sample: []}
    required_per_upstream:
      description: Minimum requests each expected upstream had to serve (with I(weights), the lowest of them).
      type: float
      sample: 5.0
    required:
      description: Minimum requests each expected upstream had to serve, by upstream.
      type: dict
      sample: {"10.0.1.11:3000": 7.5, "10.0.1.12:3000": 7.5}
    unexpected:
      description: Upstreams that served requests but are in neither I(expected) nor I(excluded).
      type: list
      elements: str
      sample: []
    tried_before_serving:
      description: Upstreams the balancer tried and left before another one served the request, with counts.
      type: dict
      sample: {"10.0.1.13:3000": 1}
    violations:
      description: Every way the distribution missed its expectations.
      type: list
      elements: str
      sample: ["excluded upstream 10.0.1.13:3000 served 4 of 30 requests (13.3%)"]
    ok: {description: Whether there was no violation., type: bool, sample: true}
msg:
  description: Summary, or on failure every failing endpoint and distribution violation with its reason.
  returned: always
  type: str
  sample: "3 endpoints healthy"
"""
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.ywmessaging.scaling.plugins.module_utils import http_target  # noqa: E402
from ansible_collections.ywmessaging.scaling.plugins.module_utils.http_distribution import (  # noqa: E402
    collect_distribution,
    evaluate_distribution,
)
from ansible_collections.ywmessaging.scaling.plugins.module_utils.http_health import (  # noqa: E402
    HealthRun,
    failure_message,
)

# The connection options (doc fragment http_connection): defaults at the top level, overrides below.
_CONNECTION = dict(
    scheme=dict(type="str", choices=["http", "https"]),
    port=dict(type="int"),
    path=dict(type="str"),
    method=dict(type="str", choices=["GET", "HEAD"]),
    status_codes=dict(type="list", elements="int"),
    timeout=dict(type="float"),
    validate_certs=dict(type="bool"),
    ca_path=dict(type="path"),
    sni_host=dict(type="str"),
    host_header=dict(type="str"),
    headers=dict(type="dict"),
)
_TOP_DEFAULTS = dict(scheme="http", path="/", method="GET", status_codes=[200], timeout=5.0, validate_certs=True)
# A target is a url, or a host with optional scheme, port and path.
_TARGET = dict(
    required_one_of=[["url", "host"]],
    mutually_exclusive=[["url", "host"], ["url", "port"], ["url", "path"], ["url", "scheme"]],
)
# Bounds the argument spec cannot express: (option, minimum).
_MINIMUMS = (("max_workers", 1), ("retries", 0), ("delay", 0), ("deadline", 0))
_DIST_MINIMUMS = (("count", 1), ("concurrency", 1), ("max_failures", 0))


def argument_spec():
    endpoint = dict(name=dict(type="str"), url=dict(type="str"), host=dict(type="str"), **_CONNECTION)
    endpoint.update(json=dict(type="dict"), return_body_fields=dict(type="list", elements="str"))
    distribution = dict(
        url=dict(type="str"),
        host=dict(type="str"),
        count=dict(type="int", default=30),
        concurrency=dict(type="int", default=1),
        header=dict(type="str", default="X-Upstream-Addr"),
        expected=dict(type="list", elements="str", default=[]),
        excluded=dict(type="list", elements="str", default=[]),
        tolerance=dict(type="float"),
        min_share=dict(type="float"),
        weights=dict(type="dict"),
        max_failures=dict(type="int", default=0),
        allow_unexpected=dict(type="bool", default=False),
        **_CONNECTION,
    )
    spec = dict((key, dict(option, default=_TOP_DEFAULTS.get(key))) for key, option in _CONNECTION.items())
    spec["headers"]["default"] = {}
    spec.update(
        endpoints=dict(type="list", elements="dict", default=[], options=endpoint, **_TARGET),
        json=dict(type="dict", default={}),
        return_body_fields=dict(type="list", elements="str", default=[]),
        max_workers=dict(type="int", default=16),
        retries=dict(type="int"),
        delay=dict(type="float", default=1),
        deadline=dict(type="float"),
        distribution=dict(
            type="dict",
            options=distribution,
            required_one_of=_TARGET["required_one_of"],
            mutually_exclusive=_TARGET["mutually_exclusive"] + [["tolerance", "min_share"], ["weights", "min_share"]],
        ),
    )
    return spec


def distribution_errors(dist):
    """What the argument spec cannot say about ``distribution``; also turns weights into numbers."""
    errors = ["%s must be at least %s, got %s" % (k, low, dist[k]) for k, low in _DIST_MINIMUMS if dist[k] < low]
    if dist["tolerance"] is not None and not 0 <= dist["tolerance"] < 1:
        errors.append("tolerance must be in [0, 1), got %g" % dist["tolerance"])
    if dist["min_share"] is not None and not 0 <= dist["min_share"] <= 100:
        errors.append("min_share is a percentage (0-100), got %g" % dist["min_share"])
    both = sorted(set(dist["expected"]) & set(dist["excluded"]))
    if both:
        errors.append("%s cannot be both expected and excluded" % ", ".join(both))
    if not dist["header"]:
        errors.append("header must not be empty")
    for upstream, weight in (dist["weights"] or {}).items():
        try:
            dist["weights"][upstream] = float(weight)
        except (TypeError, ValueError):
            dist["weights"][upstream] = 0
        if upstream not in dist["expected"] or not dist["weights"][upstream] > 0:
            errors.append("weights: %s must be an expected upstream with a weight above 0, got %r" % (upstream, weight))
    return ["distribution: " + e for e in errors]


def build_message(results, rounds, elapsed_s, dist=None):
    """The task's msg: a summary, or every failing endpoint and distribution violation and why."""
    failing, violations = failure_message(results, rounds, elapsed_s), (dist or {}).get("violations")
    if failing or violations:
        parts = [failing] if failing else []
        if violations:
            parts.append("distribution through %s: %s" % (dist["url"], "; ".join(violations)))
        return " | ".join(parts)
    parts = ["%d endpoint%s healthy" % (len(results), "" if len(results) == 1 else "s")] if results else []
    if dist:
        parts.append("distribution ok: " + ", ".join("%s=%d" % c for c in sorted(dist["counts"].items())))
    return "; ".join(parts)


class UpstreamHealth:
    """Resolves the targets, runs the endpoint checks and the distribution measurement."""

    def __init__(self, module):
        self.params = module.params
        self.result = dict(changed=False, endpoints=[], healthy=[], failing=[], attempts=0, elapsed_ms=0.0, msg="")

    def validate(self):
        """Returns (endpoint targets, distribution target or None, errors)."""
        p = self.params
        defaults = dict((k, p[k]) for k in list(_CONNECTION) + ["json", "return_body_fields"])
        errors = ["%s must be at least %s, got %s" % (k, low, p[k]) for k, low in _MINIMUMS if (p[k] or 0) < low]
        if not p["endpoints"] and not p["distribution"]:
            errors.append("nothing to check: give endpoints, distribution, or both")
        endpoints, seen = [], {}
        for index, raw in enumerate(p["endpoints"]):
            label = "endpoints[%d]%s" % (index, " (%s)" % raw["name"] if raw.get("name") else "")
            target, problems = http_target.resolve(raw, defaults, label)
            errors.extend(problems)
            if target is not None and target.name in seen:
                errors.append(
                    "endpoints[%d]: name %r is already used by endpoints[%d]; names must be unique"
                    % (index, target.name, seen[target.name])
                )
            elif target is not None:
                seen[target.name] = index
                endpoints.append(target)
        dist_target, dist = None, p["distribution"]
        if dist:
            dist_target, problems = http_target.resolve(
                dist, dict(defaults, json={}, return_body_fields=[]), "distribution"
            )
            errors.extend(problems + distribution_errors(dist))
            if dist_target is not None:
                dist_target.name = "distribution"
        return endpoints, dist_target, errors

    def measure(self, target):
        """Send the distribution requests and judge who served them."""
        dist = self.params["distribution"]
        tally = collect_distribution(target, dist["count"], dist["concurrency"], dist["header"])
        rules = dict((k, dist[k]) for k in ("tolerance", "min_share", "weights", "max_failures", "allow_unexpected"))
        summary = evaluate_distribution(tally, dist["header"], dist["expected"], dist["excluded"], **rules)[1]
        summary.update(url=target.url, header=dist["header"], expected=dist["expected"], excluded=dist["excluded"])
        return summary

    def run(self):
        started = time.monotonic()
        endpoints, dist_target, errors = self.validate()
        r = self.result
        if errors:
            r["msg"] = "invalid arguments: " + "; ".join(errors)
            return r, False
        if endpoints:
            p = self.params
            checker = HealthRun(endpoints, p["max_workers"], p["retries"], p["delay"], p["deadline"])
            r.update(endpoints=checker.run(), attempts=checker.rounds)
            r["healthy"] = [e["name"] for e in r["endpoints"] if e["ok"]]
            r["failing"] = [e["name"] for e in r["endpoints"] if not e["ok"]]
        dist = self.measure(dist_target) if dist_target else None
        if dist is not None:
            r["distribution"] = dist
        elapsed = time.monotonic() - started
        r["elapsed_ms"] = round(elapsed * 1000.0, 1)
        r["msg"] = build_message(r["endpoints"], r["attempts"], elapsed, dist)
        ok = not r["failing"] and (dist is None or dist["ok"])
        return r, ok


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    result, ok = UpstreamHealth(module).run()
    if not ok:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
