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
  - Uses only the Python standard library on the managed host (no C(requests)). Requests go straight to the
    endpoint; proxy environment variables are ignored. Redirects are not followed (a 301 is status 301).
  - Options given at the top level are defaults for every endpoint; an endpoint's own value replaces them,
    except I(headers), which are merged (the endpoint's value wins for the same header).
author:
  - ywmessaging.scaling contributors (@ywmessaging)
extends_documentation_fragment:
  - ywmessaging.scaling.read_only
options:
  endpoints:
    description:
      - The endpoints to check. Each needs I(url), or I(host) with optional I(port), I(path) and I(scheme).
      - Names must be unique; an endpoint without I(name) is named by its URL.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Label used in results and in the failure message.
        type: str
      url:
        description:
          - Full C(http://) or C(https://) URL. Mutually exclusive with I(host), I(port), I(path) and I(scheme).
        type: str
      host:
        description: Host name or address to connect to (IPv6 with or without brackets).
        type: str
      port:
        description: TCP port. Defaults to the top-level I(port), else 80 for http and 443 for https.
        type: int
      scheme:
        description: C(http) or C(https), used with I(host).
        type: str
        choices: [http, https]
      path:
        description: Request path, with query string if any. Used with I(host).
        type: str
      method:
        description:
          - HTTP method. C(HEAD) gets no body, so it cannot be combined with I(json) or I(return_body_fields);
            an endpoint that sets C(HEAD) itself does not inherit the top-level ones.
        type: str
        choices: [GET, HEAD]
      status_codes:
        description: Accepted HTTP status codes.
        type: list
        elements: int
      json:
        description:
          - 'Expected JSON body fields, as a mapping of dotted path to expected value, for example
        C({status: ok, checks.database: ok}). A numeric key indexes a list (C(items.0.state)); write
        C(\.) for a dot inside a key.'
          - Types must match (C(true) is not C(1)), except that a string expectation also matches a
            number, boolean or null with the same JSON spelling.
          - Replaces the top-level I(json) for this endpoint; C({}) checks no field.
        type: dict
      return_body_fields:
        description: Dotted paths of extra body fields to return in RV(endpoints[].fields) without checking them.
        type: list
        elements: str
      timeout:
        description: Seconds to wait for the connection and for each read.
        type: float
      validate_certs:
        description: Verify the server certificate and its name for https.
        type: bool
      ca_path:
        description:
          - CA bundle file, or a directory of hashed CA certificates, to verify the server with. When set,
            only these CAs are trusted (the system store is not used).
        type: path
      sni_host:
        description:
          - Name sent as TLS SNI and checked against the certificate, while connecting to I(host) or the URL's
            host. Lets you check a TLS endpoint by IP address. Also sent as the C(Host) header when
            I(host_header) is not set.
        type: str
      host_header:
        description:
          - Value of the C(Host) header. For https it is also the SNI name when I(sni_host) is not set.
        type: str
      headers:
        description: Extra request headers, merged over the top-level I(headers).
        type: dict
  scheme:
    description: Default scheme for endpoints given by I(host).
    type: str
    choices: [http, https]
    default: http
  port:
    description: Default port for endpoints given by I(host). Unset means 80 or 443 by scheme.
    type: int
  path:
    description: Default path for endpoints given by I(host).
    type: str
    default: /
  method:
    description: Default HTTP method.
    type: str
    choices: [GET, HEAD]
    default: GET
  status_codes:
    description: Default accepted status codes.
    type: list
    elements: int
    default: [200]
  json:
    description: Default JSON expectations (see I(endpoints[].json)).
    type: dict
    default: {}
  return_body_fields:
    description: Default extra body fields to return.
    type: list
    elements: str
    default: []
  timeout:
    description: Default seconds to wait for the connection and for each read.
    type: float
    default: 5
  validate_certs:
    description: Default for certificate verification.
    type: bool
    default: true
  ca_path:
    description: Default CA bundle (see I(endpoints[].ca_path)). Ignored for http endpoints.
    type: path
  sni_host:
    description: Default SNI name (see I(endpoints[].sni_host)). Ignored for http endpoints.
    type: str
  host_header:
    description: Default C(Host) header (see I(endpoints[].host_header)).
    type: str
  headers:
    description:
      - Default extra request headers. Values appear in the task's invocation output; put the task under
        C(no_log) if they carry a secret.
    type: dict
    default: {}
  max_workers:
    description: Endpoints checked at the same time.
    type: int
    default: 16
  retries:
    description:
      - How many more times to check an endpoint that failed. Unset means 0 without I(deadline) and
        unlimited (until the deadline) with it. With both, checking stops at whichever comes first.
    type: int
  delay:
    description: Seconds between two rounds of checks of the failing endpoints.
    type: float
    default: 1
  deadline:
    description:
      - Keep re-checking failing endpoints until all are healthy or this many seconds have passed. No new
        round starts after the deadline; the last round can overrun it by up to I(timeout).
    type: float
  distribution:
    description:
      - Measure how a load balancer spreads requests over its upstreams. Runs once, after the endpoint
        checks; it takes the top-level defaults for connection options but not I(json).
      - The balancer must name the serving upstream in a response header, for nginx
        C(add_header X-Upstream-Addr $upstream_addr always;). When nginx retried a request on another
        upstream (C(a:3000, b:3000)) the last one is counted as serving it.
      - Each upstream in I(expected) must serve at least C((1 - tolerance) * served / len(expected)) requests,
        or I(min_share) percent of them, where C(served) is the number of answered requests that named an
        upstream.
    type: dict
    suboptions:
      url:
        description: URL to send the requests to (the load balancer). Or give I(host), I(port), I(path), I(scheme).
        type: str
      host:
        description: Load balancer host or address.
        type: str
      port:
        description: Load balancer port.
        type: int
      scheme:
        description: C(http) or C(https), used with I(host).
        type: str
        choices: [http, https]
      path:
        description: Request path, used with I(host).
        type: str
      method:
        description: HTTP method; C(HEAD) is enough to read the header.
        type: str
        choices: [GET, HEAD]
      status_codes:
        description: Status codes that count as success.
        type: list
        elements: int
      timeout:
        description: Seconds to wait for the connection and for each read.
        type: float
      validate_certs:
        description: Verify the certificate.
        type: bool
      ca_path:
        description: CA bundle to verify the load balancer with.
        type: path
      sni_host:
        description: SNI name when connecting by address.
        type: str
      host_header:
        description: C(Host) header.
        type: str
      headers:
        description: Extra request headers.
        type: dict
      count:
        description: Number of requests to send.
        type: int
        default: 30
      concurrency:
        description: Requests in flight at the same time.
        type: int
        default: 1
      header:
        description: Response header naming the upstream that served the request.
        type: str
        default: X-Upstream-Addr
      expected:
        description:
          - Upstreams, written as the balancer reports them (nginx C($upstream_addr) gives C(ip:port)), that
            must each get their share.
        type: list
        elements: str
        default: []
      excluded:
        description: Upstreams (drained or stopped) that must serve no request.
        type: list
        elements: str
        default: []
      tolerance:
        description:
          - Allowed shortfall from the fair share, between 0 and 1. C(0.5) accepts an upstream that served half
            of its fair share. Defaults to C(0.5) when I(min_share) is not set. Mutually exclusive with I(min_share).
        type: float
      min_share:
        description: Minimum percentage (0-100) of the served requests that each expected upstream must serve.
        type: float
      max_failures:
        description: Requests allowed to fail (error or unaccepted status) before it is a violation.
        type: int
        default: 0
      allow_unexpected:
        description: Accept upstreams that are in neither I(expected) nor I(excluded) serving requests.
        type: bool
        default: false
notes:
  - The C(timeout) applies to connecting and to each read, not to the whole request.
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

- name: Traffic is spread over the three backends and none reaches the drained one
  ywmessaging.scaling.upstream_health:
    distribution:
      url: https://api.example.com/health
      count: 60
      concurrency: 4
      expected: [10.0.1.11:3000, 10.0.1.12:3000]
      excluded: [10.0.1.13:3000]
      tolerance: 0.3
  register: spread

- name: Show the spread
  ansible.builtin.debug:
    var: spread.distribution.counts
"""

RETURN = r"""
endpoints:
  description: One entry per endpoint, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The endpoint's name.
      type: str
      sample: backend-1
    url:
      description: The URL that was requested (the address connected to, not the SNI name).
      type: str
      sample: http://10.0.1.11:3000/health
    ok:
      description: Whether the last attempt met every expectation.
      type: bool
      sample: true
    status:
      description: HTTP status of the last attempt; null when no response came.
      type: int
      sample: 200
    latency_ms:
      description: Milliseconds from connecting to having read the body, in the last attempt.
      type: float
      sample: 12.4
    attempts:
      description: How many times this endpoint was checked.
      type: int
      sample: 1
    fields:
      description: The checked I(json) fields and the I(return_body_fields) as found in the body (null when absent).
      type: dict
      sample: {status: ok, checks.database: ok}
    error:
      description: Why the last attempt failed, every problem separated by C(; ); null when it passed.
      type: str
      sample: "HTTP status 503, expected 200; json field 'status' is \"degraded\", expected \"ok\""
healthy:
  description: Names of the endpoints that passed.
  returned: always
  type: list
  elements: str
  sample: [backend-1, backend-2]
failing:
  description: Names of the endpoints that failed.
  returned: always
  type: list
  elements: str
  sample: [backend-3]
attempts:
  description: Rounds of checks run (1 when everything passed the first time).
  returned: always
  type: int
  sample: 1
elapsed_ms:
  description: Wall time of the whole task in milliseconds.
  returned: always
  type: float
  sample: 215.3
distribution:
  description: Result of distribution mode.
  returned: when I(distribution) is set
  type: dict
  contains:
    url:
      description: URL the requests were sent to.
      type: str
      sample: https://api.example.com/health
    header:
      description: Header read for the upstream.
      type: str
      sample: X-Upstream-Addr
    requests:
      description: Requests sent.
      type: int
      sample: 30
    succeeded:
      description: Requests answered with an accepted status.
      type: int
      sample: 30
    failed:
      description: Requests that failed (no response or an unaccepted status).
      type: int
      sample: 0
    failures:
      description: Failed requests counted by reason.
      type: dict
      sample: {"connection refused": 2}
    missing_header:
      description: Successful responses without the upstream header.
      type: int
      sample: 0
    counts:
      description: Requests served per upstream.
      type: dict
      sample: {"10.0.1.11:3000": 10, "10.0.1.12:3000": 10, "10.0.1.13:3000": 10}
    shares:
      description: Percentage of the served requests per upstream.
      type: dict
      sample: {"10.0.1.11:3000": 33.3, "10.0.1.12:3000": 33.3, "10.0.1.13:3000": 33.3}
    expected:
      description: The expected upstreams.
      type: list
      elements: str
      sample: ["10.0.1.11:3000", "10.0.1.12:3000", "10.0.1.13:3000"]
    excluded:
      description: The excluded upstreams.
      type: list
      elements: str
      sample: []
    required_per_upstream:
      description: Minimum requests each expected upstream had to serve.
      type: float
      sample: 5.0
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
    ok:
      description: Whether there was no violation.
      type: bool
      sample: true
msg:
  description: Summary, or on failure every failing endpoint and distribution violation with its reason.
  returned: always
  type: str
  sample: "3 endpoints healthy"
"""

import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.ywmessaging.scaling.plugins.module_utils.http_health import (  # noqa: E402
    HealthRun,
    build_failure_message,
    collect_distribution,
    evaluate_distribution,
    normalize_endpoint,
    normalize_endpoints,
)

_CONNECTION_OPTIONS = dict(
    port=dict(type="int"),
    scheme=dict(type="str", choices=["http", "https"]),
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


def argument_spec():
    endpoint = dict(
        name=dict(type="str"),
        url=dict(type="str"),
        host=dict(type="str"),
        json=dict(type="dict"),
        return_body_fields=dict(type="list", elements="str"),
        **_CONNECTION_OPTIONS,
    )
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
        max_failures=dict(type="int", default=0),
        allow_unexpected=dict(type="bool", default=False),
        **_CONNECTION_OPTIONS,
    )
    return dict(
        endpoints=dict(type="list", elements="dict", default=[], options=endpoint),
        scheme=dict(type="str", choices=["http", "https"], default="http"),
        port=dict(type="int"),
        path=dict(type="str", default="/"),
        method=dict(type="str", choices=["GET", "HEAD"], default="GET"),
        status_codes=dict(type="list", elements="int", default=[200]),
        json=dict(type="dict", default={}),
        return_body_fields=dict(type="list", elements="str", default=[]),
        timeout=dict(type="float", default=5),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        sni_host=dict(type="str"),
        host_header=dict(type="str"),
        headers=dict(type="dict", default={}),
        max_workers=dict(type="int", default=16),
        retries=dict(type="int"),
        delay=dict(type="float", default=1),
        deadline=dict(type="float"),
        distribution=dict(type="dict", options=distribution),
    )


class UpstreamHealth:
    """Validates the task, runs the endpoint checks and the distribution measurement."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.result = dict(changed=False, endpoints=[], healthy=[], failing=[], attempts=0, elapsed_ms=0.0, msg="")

    def validate(self):
        p = self.params
        defaults = dict((k, p[k]) for k in _CONNECTION_OPTIONS)
        defaults.update(json=p["json"], return_body_fields=p["return_body_fields"])
        endpoints, errors = normalize_endpoints(p["endpoints"], defaults)
        if not p["endpoints"] and not p["distribution"]:
            errors.append("nothing to check: give endpoints, distribution, or both")
        for key, minimum in (("max_workers", 1), ("retries", 0), ("delay", 0), ("deadline", 0)):
            if p[key] is not None and p[key] < minimum:
                errors.append("%s must be at least %s, got %s" % (key, minimum, p[key]))
        dist_endpoint = None
        dist = p["distribution"]
        if dist:
            dist_defaults = dict(defaults, json={}, return_body_fields=[])
            dist_endpoint, dist_errors = normalize_endpoint(dist, dist_defaults, section="distribution")
            errors.extend(dist_errors)
            errors.extend(self._distribution_errors(dist))
            if dist_endpoint is not None:
                dist_endpoint.name = "distribution"
        return endpoints, dist_endpoint, errors

    @staticmethod
    def _distribution_errors(dist):
        errors = []
        if dist["count"] < 1:
            errors.append("distribution: count must be at least 1, got %d" % dist["count"])
        if dist["concurrency"] < 1:
            errors.append("distribution: concurrency must be at least 1, got %d" % dist["concurrency"])
        if dist["max_failures"] < 0:
            errors.append("distribution: max_failures must be at least 0, got %d" % dist["max_failures"])
        if dist["tolerance"] is not None and dist["min_share"] is not None:
            errors.append("distribution: give tolerance or min_share, not both")
        if dist["tolerance"] is not None and not 0 <= dist["tolerance"] < 1:
            errors.append("distribution: tolerance must be in [0, 1), got %g" % dist["tolerance"])
        if dist["min_share"] is not None and not 0 <= dist["min_share"] <= 100:
            errors.append("distribution: min_share is a percentage (0-100), got %g" % dist["min_share"])
        both = sorted(set(dist["expected"]) & set(dist["excluded"]))
        if both:
            errors.append("distribution: %s cannot be both expected and excluded" % ", ".join(both))
        if not dist["header"]:
            errors.append("distribution: header must not be empty")
        return errors

    def run(self):
        started = time.monotonic()
        endpoints, dist_endpoint, errors = self.validate()
        if errors:
            self.result["msg"] = "invalid arguments: " + "; ".join(errors)
            return self.result, False
        p = self.params
        results, rounds = [], 0
        if endpoints:
            checker = HealthRun(
                endpoints, max_workers=p["max_workers"], retries=p["retries"], delay=p["delay"], deadline=p["deadline"]
            )
            results = checker.run()
            rounds = checker.rounds
        distribution = None
        if dist_endpoint is not None:
            dist = p["distribution"]
            tally = collect_distribution(dist_endpoint, dist["count"], dist["concurrency"], dist["header"])
            _violations, distribution = evaluate_distribution(
                tally,
                dist["header"],
                expected=dist["expected"],
                excluded=dist["excluded"],
                tolerance=dist["tolerance"],
                min_share=dist["min_share"],
                max_failures=dist["max_failures"],
                allow_unexpected=dist["allow_unexpected"],
            )
            distribution.update(
                url=dist_endpoint.url, header=dist["header"], expected=dist["expected"], excluded=dist["excluded"]
            )
            self.result["distribution"] = distribution
        elapsed = time.monotonic() - started
        self.result.update(
            endpoints=results,
            healthy=[r["name"] for r in results if r["ok"]],
            failing=[r["name"] for r in results if not r["ok"]],
            attempts=rounds,
            elapsed_ms=round(elapsed * 1000.0, 1),
        )
        ok = not self.result["failing"] and (distribution is None or distribution["ok"])
        if ok:
            summary = []
            if results:
                summary.append("%d endpoint%s healthy" % (len(results), "" if len(results) == 1 else "s"))
            if distribution is not None:
                summary.append(
                    "distribution ok: %s"
                    % ", ".join("%s=%d" % (u, n) for u, n in sorted(distribution["counts"].items()))
                )
            self.result["msg"] = "; ".join(summary)
        else:
            self.result["msg"] = build_failure_message(
                results, rounds, elapsed, distribution, dist_endpoint.url if dist_endpoint else None
            )
        return self.result, ok


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    result, ok = UpstreamHealth(module).run()
    if not ok:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
