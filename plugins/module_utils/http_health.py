# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""HTTP health checks shared by ywmessaging.scaling modules.

Pure helpers (endpoint normalisation, dotted-path JSON matching, fair-share maths,
message building) plus a small standard-library HTTP client. The client uses
http.client + ssl directly so that it can connect to one address while sending the
SNI name and Host header of another, which urllib-based helpers cannot do. It never
uses a proxy: health checks talk to the endpoint itself.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection, HTTPException, HTTPSConnection, RemoteDisconnected
from urllib.parse import urlsplit

MAX_BODY_BYTES = 1024 * 1024
USER_AGENT = "ywmessaging.scaling-upstream_health"
DEFAULT_PORTS = {"http": 80, "https": 443}

# Options an endpoint may set and otherwise inherits from the module level.
INHERITED_KEYS = (
    "scheme",
    "port",
    "path",
    "method",
    "status_codes",
    "json",
    "return_body_fields",
    "timeout",
    "validate_certs",
    "ca_path",
    "sni_host",
    "host_header",
    "headers",
)
_TLS_ONLY_KEYS = ("ca_path", "sni_host")
_UPSTREAM_SEPARATOR = re.compile(r"\s*,\s*|\s+:\s+")


# --------------------------------------------------------------------------- JSON paths


def split_path(path):
    """Split a dotted path into keys; ``\\.`` is a literal dot inside a key."""
    parts, buf, i = [], [], 0
    while i < len(path):
        char = path[i]
        if char == "\\" and path[i + 1 : i + 2] == ".":
            buf.append(".")
            i += 2
            continue
        if char == ".":
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(char)
        i += 1
    parts.append("".join(buf))
    return parts


def path_error(path):
    """Return why a dotted path is unusable, or None."""
    if not isinstance(path, str) or not path:
        return "must be a non-empty string"
    if any(part == "" for part in split_path(path)):
        return "has an empty key (two dots in a row, or a leading/trailing dot)"
    return None


def lookup(data, path):
    """Follow a dotted path through dicts and lists. Returns (found, value)."""
    current = data
    for key in split_path(path):
        if isinstance(current, dict) and key in current:
            current = current[key]
        elif isinstance(current, list) and re.match(r"^-?\d+$", key) and -len(current) <= int(key) < len(current):
            current = current[int(key)]
        else:
            return False, None
    return True, current


def values_match(expected, actual):
    """Compare an expected value from the task with a value from a JSON body.

    Types matter (``true`` is not ``1``), except that a string expectation matches a
    scalar of another type by its JSON spelling, so ``ready: "true"`` given as a
    ``key=value`` string still matches ``{"ready": true}``.
    """
    if isinstance(expected, str) and not isinstance(actual, str):
        if actual is None or isinstance(actual, (bool, int, float)):
            return expected == json.dumps(actual)
        return False
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return expected == actual
    if isinstance(expected, dict) and isinstance(actual, dict):
        return set(expected) == set(actual) and all(values_match(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(values_match(e, a) for e, a in zip(expected, actual))
    return type(expected) is type(actual) and expected == actual


def show(value):
    """A value as it reads in JSON, for messages."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


# --------------------------------------------------------------------------- endpoints


def strip_port(host):
    """``name:port`` or ``[v6]:port`` -> the bare name or address."""
    if host.startswith("["):
        return host[1 : host.index("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


class Endpoint:
    """One normalised HTTP target with its expectations."""

    def __init__(self, **kwargs):
        self.name = kwargs["name"]
        self.scheme = kwargs["scheme"]
        self.host = kwargs["host"]
        self.port = kwargs["port"]
        self.path = kwargs["path"]
        self.method = kwargs.get("method", "GET")
        self.status_codes = list(kwargs.get("status_codes") or [200])
        self.json = dict(kwargs.get("json") or {})
        self.return_body_fields = list(kwargs.get("return_body_fields") or [])
        self.timeout = float(kwargs.get("timeout", 5))
        self.validate_certs = kwargs.get("validate_certs", True)
        self.ca_path = kwargs.get("ca_path")
        self.sni_host = kwargs.get("sni_host")
        self.host_header = kwargs.get("host_header")
        self.headers = dict(kwargs.get("headers") or {})
        self._ssl_context = None

    @property
    def url(self):
        host = "[%s]" % self.host if ":" in self.host else self.host
        if DEFAULT_PORTS.get(self.scheme) == self.port:
            return "%s://%s%s" % (self.scheme, host, self.path)
        return "%s://%s:%d%s" % (self.scheme, host, self.port, self.path)

    @property
    def server_name(self):
        """The TLS name sent as SNI and checked against the certificate."""
        if self.sni_host:
            return self.sni_host
        if self.host_header:
            return strip_port(self.host_header)
        return self.host

    def request_headers(self):
        headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"}
        headers.update(self.headers)
        host = self.host_header
        if not host and self.sni_host:
            host = self.sni_host
            if DEFAULT_PORTS.get(self.scheme) != self.port:
                host = "%s:%d" % (host, self.port)
        if host:
            for key in [k for k in headers if k.lower() == "host"]:
                del headers[key]
            headers["Host"] = host
        return headers

    def ssl_context(self):
        if self._ssl_context is None:
            if self.validate_certs:
                if self.ca_path and os.path.isdir(self.ca_path):
                    context = ssl.create_default_context(capath=self.ca_path)
                elif self.ca_path:
                    context = ssl.create_default_context(cafile=self.ca_path)
                else:
                    context = ssl.create_default_context()
            else:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._ssl_context = context
        return self._ssl_context


def _label(index, raw, section):
    name = raw.get("name") if isinstance(raw, dict) else None
    if section == "distribution":
        return "distribution"
    return "%s[%d]%s" % (section, index, " (%s)" % name if name else "")


def normalize_endpoint(raw, defaults, index=0, section="endpoints"):
    """Merge one endpoint with the module-level defaults and validate it.

    Returns (Endpoint or None, list of error strings). Per-endpoint values replace the
    defaults, except ``headers`` which are merged (the endpoint wins on a clash).
    """
    label = _label(index, raw, section)
    errors = []

    def err(message):
        errors.append("%s: %s" % (label, message))

    own = dict((k, v) for k, v in raw.items() if v is not None)
    merged = dict((k, defaults.get(k)) for k in INHERITED_KEYS)
    merged.update(dict((k, v) for k, v in own.items() if k in INHERITED_KEYS))
    merged["headers"] = dict(defaults.get("headers") or {}, **(own.get("headers") or {}))

    url = own.get("url")
    if url and any(k in own for k in ("host", "port", "path", "scheme")):
        err("give either url or host (with port, path, scheme), not both")
        return None, errors
    if url:
        parts = urlsplit(url)
        scheme = (parts.scheme or "").lower()
        if scheme not in DEFAULT_PORTS:
            err("url %r must start with http:// or https://" % url)
            return None, errors
        if parts.username is not None or parts.password is not None:
            err("url must not carry credentials; send them with headers")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            err("url %r has an invalid port" % url)
            return None, errors
        host = parts.hostname
        if not host:
            err("url %r has no host" % url)
            return None, errors
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
    elif own.get("host"):
        scheme = (merged.get("scheme") or "http").lower()
        if scheme not in DEFAULT_PORTS:
            err("scheme must be http or https, got %r" % scheme)
            return None, errors
        host = own["host"].strip()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        port = DEFAULT_PORTS[scheme] if merged.get("port") is None else merged["port"]
        path = "/" if merged.get("path") is None else merged["path"]
        if not path.startswith("/"):
            err("path %r must start with /" % path)
    else:
        err("needs url, or host (with optional port, path, scheme)")
        return None, errors

    if not isinstance(port, int) or not 0 < port < 65536:
        err("port %r is out of range 1-65535" % (port,))

    method = (merged.get("method") or "GET").upper()
    if method not in ("GET", "HEAD"):
        err("method must be GET or HEAD, got %r" % method)

    status_codes = merged.get("status_codes") or [200]
    bad_codes = [c for c in status_codes if not isinstance(c, int) or not 100 <= c <= 599]
    if bad_codes:
        err("status_codes must be HTTP status codes (100-599), got %s" % ", ".join(str(c) for c in bad_codes))

    if method == "HEAD" and own.get("method"):
        # An endpoint that asks for HEAD itself does not inherit body expectations it cannot meet.
        for key in ("json", "return_body_fields"):
            if key not in own:
                merged[key] = None
    expectations = merged.get("json") or {}
    for path_key in expectations:
        problem = path_error(path_key)
        if problem:
            err("json path %r %s" % (path_key, problem))
    for path_key in merged.get("return_body_fields") or []:
        problem = path_error(path_key)
        if problem:
            err("return_body_fields entry %r %s" % (path_key, problem))
    if method == "HEAD" and (expectations or merged.get("return_body_fields")):
        err("json and return_body_fields need a response body, which HEAD does not get; use method GET")

    timeout = merged.get("timeout")
    timeout = 5.0 if timeout is None else timeout
    if timeout <= 0:
        err("timeout must be greater than 0, got %s" % timeout)

    if scheme == "http":
        for key in _TLS_ONLY_KEYS:
            if own.get(key):
                err("%s only applies to https endpoints" % key)
        merged["ca_path"] = merged["sni_host"] = None
    ca_path = merged.get("ca_path")
    if ca_path and not os.path.exists(ca_path):
        err("ca_path %s does not exist" % ca_path)

    if errors:
        return None, errors
    endpoint = Endpoint(
        name=own.get("name") or (url if url else None) or "",
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        method=method,
        status_codes=status_codes,
        json=expectations,
        return_body_fields=merged.get("return_body_fields"),
        timeout=timeout,
        validate_certs=True if merged.get("validate_certs") is None else merged["validate_certs"],
        ca_path=ca_path,
        sni_host=merged.get("sni_host"),
        host_header=merged.get("host_header"),
        headers=merged["headers"],
    )
    if not endpoint.name:
        endpoint.name = endpoint.url
    return endpoint, errors


def normalize_endpoints(raw_endpoints, defaults):
    """Normalise a list of endpoints. Returns (endpoints, errors); names must be unique."""
    endpoints, errors, seen = [], [], {}
    for index, raw in enumerate(raw_endpoints or []):
        endpoint, problems = normalize_endpoint(raw, defaults, index)
        errors.extend(problems)
        if endpoint is None:
            continue
        if endpoint.name in seen:
            errors.append(
                "endpoints[%d]: name %r is already used by endpoints[%d]; names must be unique"
                % (index, endpoint.name, seen[endpoint.name])
            )
            continue
        seen[endpoint.name] = index
        endpoints.append(endpoint)
    return endpoints, errors


# --------------------------------------------------------------------------- HTTP


class ProbeError(Exception):
    """A request that got no HTTP response; ``message`` says why in operator terms."""

    def __init__(self, message, latency_ms=None):
        Exception.__init__(self, message)
        self.message = message
        self.latency_ms = latency_ms


class Response:
    def __init__(self, status, headers, body, latency_ms):
        self.status = status
        self.headers = headers
        self.body = body
        self.latency_ms = latency_ms

    def header(self, name):
        return self.headers.get(name.lower())


class _SNIHTTPSConnection(HTTPSConnection):
    """HTTPS to one address with the SNI / certificate name of another."""

    def __init__(self, host, port, server_name, context, timeout):
        HTTPSConnection.__init__(self, host, port, timeout=timeout, context=context)
        self._server_name = server_name
        self._tls_context = context

    def connect(self):
        HTTPConnection.connect(self)
        self.sock = self._tls_context.wrap_socket(self.sock, server_hostname=self._server_name)


def describe_error(exc, endpoint):
    """Turn a connection-level exception into a short operator-facing reason."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = getattr(exc, "verify_message", None) or str(exc)
        return "TLS certificate verification failed for %s: %s" % (endpoint.server_name, reason)
    if isinstance(exc, ssl.SSLError):
        if "timed out" in str(exc):
            return "timed out after %g s (TLS handshake)" % endpoint.timeout
        return "TLS error: %s" % (getattr(exc, "reason", None) or exc)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out after %g s" % endpoint.timeout
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, socket.gaierror):
        return "cannot resolve %s: %s" % (endpoint.host, exc.strerror or exc)
    if isinstance(exc, RemoteDisconnected):
        return "server closed the connection without a response"
    if isinstance(exc, HTTPException):
        return "invalid HTTP response (%s: %s)" % (type(exc).__name__, exc)
    if isinstance(exc, OSError):
        return "connection error: %s" % (exc.strerror or exc)
    return "unexpected error: %s: %s" % (type(exc).__name__, exc)


def http_request(endpoint, clock=time.monotonic):
    """One request to ``endpoint``. Returns a Response or raises ProbeError."""
    started = clock()
    if endpoint.scheme == "https":
        conn = _SNIHTTPSConnection(
            endpoint.host, endpoint.port, endpoint.server_name, endpoint.ssl_context(), endpoint.timeout
        )
    else:
        conn = HTTPConnection(endpoint.host, endpoint.port, timeout=endpoint.timeout)
    try:
        conn.request(endpoint.method, endpoint.path, headers=endpoint.request_headers())
        resp = conn.getresponse()
        body = b"" if endpoint.method == "HEAD" else resp.read(MAX_BODY_BYTES)
        headers = dict((k.lower(), v) for k, v in resp.getheaders())
        return Response(resp.status, headers, body, round((clock() - started) * 1000.0, 1))
    except Exception as exc:  # every failure becomes a reason in the report, never a traceback
        raise ProbeError(describe_error(exc, endpoint), round((clock() - started) * 1000.0, 1)) from None
    finally:
        conn.close()


def _status_problem(status, accepted):
    if len(accepted) == 1:
        return "HTTP status %d, expected %d" % (status, accepted[0])
    return "HTTP status %d, expected one of %s" % (status, ", ".join(str(c) for c in accepted))


def evaluate_response(endpoint, status, body):
    """Check a response against the endpoint's expectations. Returns (problems, fields)."""
    problems, fields = [], {}
    status_ok = status in endpoint.status_codes
    if not status_ok:
        problems.append(_status_problem(status, endpoint.status_codes))
    wanted = list(endpoint.json) + [p for p in endpoint.return_body_fields if p not in endpoint.json]
    if not wanted:
        return problems, fields
    try:
        data = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except ValueError:
        if status_ok:  # a 502 HTML page not being JSON is noise next to the status
            text = body[:120].decode("utf-8", "replace") if isinstance(body, bytes) else body[:120]
            snippet = " ".join(text.split())[:60]
            problems.append("body is not JSON (starts with %s)" % show(snippet))
        return problems, fields
    for path in wanted:
        found, actual = lookup(data, path)
        fields[path] = actual
        if path not in endpoint.json:
            continue
        expected = endpoint.json[path]
        if not found:
            problems.append("json field %r missing, expected %s" % (path, show(expected)))
        elif not values_match(expected, actual):
            problems.append("json field %r is %s, expected %s" % (path, show(actual), show(expected)))
    return problems, fields


def check_endpoint(endpoint, request=http_request):
    """One attempt at one endpoint. Returns a result dict (without ``attempts``)."""
    result = {
        "name": endpoint.name,
        "url": endpoint.url,
        "ok": False,
        "status": None,
        "latency_ms": None,
        "fields": {},
        "error": None,
    }
    try:
        response = request(endpoint)
    except ProbeError as exc:
        result.update(error=exc.message, latency_ms=exc.latency_ms)
        return result
    problems, fields = evaluate_response(endpoint, response.status, response.body)
    result.update(
        status=response.status,
        latency_ms=response.latency_ms,
        fields=fields,
        ok=not problems,
        error="; ".join(problems) or None,
    )
    return result


class HealthRun:
    """Check endpoints concurrently, re-checking the failing ones until healthy, out of
    retries, or past the deadline."""

    def __init__(
        self,
        endpoints,
        max_workers=16,
        retries=None,
        delay=1.0,
        deadline=None,
        check=check_endpoint,
        clock=time.monotonic,
        sleep=time.sleep,
    ):
        self.endpoints = endpoints
        self.max_workers = max(1, max_workers)
        self.delay = delay
        self.deadline = deadline
        if retries is not None:
            self.max_attempts = retries + 1
        else:
            self.max_attempts = None if deadline is not None else 1
        self.check = check
        self.clock = clock
        self.sleep = sleep
        self.rounds = 0

    def run(self):
        results = {}
        attempts = dict((ep.name, 0) for ep in self.endpoints)
        pending = list(self.endpoints)
        ends_at = None if self.deadline is None else self.clock() + self.deadline
        workers = min(self.max_workers, max(1, len(pending)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            while pending:
                self.rounds += 1
                for endpoint, outcome in zip(pending, pool.map(self.check, pending)):
                    attempts[endpoint.name] += 1
                    outcome["attempts"] = attempts[endpoint.name]
                    results[endpoint.name] = outcome
                pending = [ep for ep in pending if not results[ep.name]["ok"]]
                if not pending:
                    break
                if self.max_attempts is not None and self.rounds >= self.max_attempts:
                    break
                if ends_at is not None and self.clock() + self.delay >= ends_at:
                    break
                self.sleep(self.delay)
        return [results[ep.name] for ep in self.endpoints]


# --------------------------------------------------------------------------- distribution


def serving_upstream(value):
    """The upstream that served a request, from an nginx ``$upstream_addr``-style value.

    ``10.0.0.1:3000, 10.0.0.2:3000`` means the first failed and the second answered;
    `` : `` separates internal redirects. Returns (server, tried_before) or (None, []).
    """
    if value is None:
        return None, []
    hops = [h for h in _UPSTREAM_SEPARATOR.split(value.strip()) if h and h != "-"]
    if not hops:
        return None, []
    return hops[-1], hops[:-1]


def collect_distribution(endpoint, count, concurrency, header, request=http_request):
    """Send ``count`` requests with ``concurrency`` workers and tally who served them."""

    def one(_index):
        try:
            response = request(endpoint)
        except ProbeError as exc:
            return {"error": exc.message}
        if response.status not in endpoint.status_codes:
            return {"error": _status_problem(response.status, endpoint.status_codes)}
        server, tried = serving_upstream(response.header(header))
        return {"upstream": server, "tried": tried}

    tally = {"requests": count, "counts": {}, "failures": {}, "missing_header": 0, "tried": {}}
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, count))) as pool:
        for outcome in pool.map(one, range(count)):
            if "error" in outcome:
                tally["failures"][outcome["error"]] = tally["failures"].get(outcome["error"], 0) + 1
            elif outcome["upstream"] is None:
                tally["missing_header"] += 1
            else:
                tally["counts"][outcome["upstream"]] = tally["counts"].get(outcome["upstream"], 0) + 1
                for hop in outcome["tried"]:
                    tally["tried"][hop] = tally["tried"].get(hop, 0) + 1
    return tally


def required_per_upstream(served, n_expected, tolerance=None, min_share=None):
    """Minimum requests each expected upstream must serve out of ``served``.

    With ``min_share`` (percent) it is that share of ``served``; otherwise it is the fair
    share ``served / n_expected`` reduced by ``tolerance`` (0.5 when neither is given).
    """
    if n_expected <= 0:
        return 0.0
    if min_share is not None:
        return served * min_share / 100.0
    if tolerance is None:
        tolerance = 0.5
    return (1.0 - tolerance) * served / n_expected


def _pct(part, whole):
    return round(100.0 * part / whole, 1) if whole else 0.0


def evaluate_distribution(
    tally,
    header,
    expected=None,
    excluded=None,
    tolerance=None,
    min_share=None,
    max_failures=0,
    allow_unexpected=False,
):
    """Judge a tally from collect_distribution. Returns (violations, summary dict)."""
    expected = list(expected or [])
    excluded = list(excluded or [])
    counts = tally["counts"]
    served = sum(counts.values())
    failed = sum(tally["failures"].values())
    required = required_per_upstream(served, len(expected), tolerance, min_share)
    violations = []

    if failed > max_failures:
        reasons = ", ".join(
            "%s x%d" % (reason, n) for reason, n in sorted(tally["failures"].items(), key=lambda kv: -kv[1])
        )
        violations.append("%d of %d requests failed (%s)" % (failed, tally["requests"], reasons))
    if tally["missing_header"]:
        violations.append(
            "%d of %d responses had no %s header, so their upstream is unknown"
            % (tally["missing_header"], tally["requests"], header)
        )
    for upstream in excluded:
        if counts.get(upstream):
            violations.append(
                "excluded upstream %s served %d of %d requests (%s%%)"
                % (upstream, counts[upstream], served, _pct(counts[upstream], served))
            )
    if min_share is not None:
        rule = "min_share %g%%" % min_share
    else:
        rule = "fair share %g with tolerance %g" % (
            round(served / len(expected), 2) if expected else 0,
            0.5 if tolerance is None else tolerance,
        )
    for upstream in expected:
        got = counts.get(upstream, 0)
        if served and got < required - 1e-9:
            violations.append(
                "upstream %s served %d of %d requests (%s%%), below the minimum of %g (%s)"
                % (upstream, got, served, _pct(got, served), round(required, 2), rule)
            )
    unexpected = sorted(u for u in counts if u not in expected and u not in excluded)
    if expected and unexpected and not allow_unexpected:
        violations.append(
            "upstream(s) not listed in expected served requests: %s"
            % ", ".join("%s (%d)" % (u, counts[u]) for u in unexpected)
        )
    summary = {
        "requests": tally["requests"],
        "succeeded": served + tally["missing_header"],
        "failed": failed,
        "failures": dict(tally["failures"]),
        "missing_header": tally["missing_header"],
        "counts": dict(counts),
        "shares": dict((u, _pct(n, served)) for u, n in counts.items()),
        "required_per_upstream": round(required, 2),
        "unexpected": unexpected,
        "tried_before_serving": dict(tally.get("tried", {})),
        "violations": violations,
        "ok": not violations,
    }
    return violations, summary


# --------------------------------------------------------------------------- messages


def build_failure_message(results, rounds, elapsed_s, distribution=None, distribution_url=None):
    """One line naming every failing endpoint and distribution violation, and why."""
    failing = [r for r in results if not r["ok"]]
    pieces = []
    if failing:
        detail = "; ".join("%s (%s): %s" % (r["name"], r["url"], r["error"]) for r in failing)
        pieces.append(
            "%d of %d endpoint%s unhealthy after %d attempt%s in %.1f s: %s"
            % (
                len(failing),
                len(results),
                "" if len(results) == 1 else "s",
                rounds,
                "" if rounds == 1 else "s",
                elapsed_s,
                detail,
            )
        )
    if distribution and distribution["violations"]:
        pieces.append("distribution through %s: %s" % (distribution_url, "; ".join(distribution["violations"])))
    return " | ".join(pieces)
