# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""One HTTP(S) target: its options resolved over the module-level ones, and one request to it.

The client uses http.client + ssl directly so that it can connect to one address while sending
the SNI name and Host header of another, which urllib-based helpers cannot do. It never uses a
proxy: health checks talk to the endpoint itself. Types and choices are the argument spec's job;
only what the spec cannot say is checked here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket
import ssl
import time
from http.client import HTTPConnection, HTTPException, HTTPSConnection, RemoteDisconnected
from urllib.parse import urlsplit

from ansible_collections.ywmessaging.scaling.plugins.module_utils.http_json import path_error

MAX_BODY_BYTES = 1024 * 1024
USER_AGENT = "ywmessaging.scaling-upstream_health"
DEFAULT_PORTS = {"http": 80, "https": 443}


def strip_port(host):
    """``name:port`` or ``[v6]:port`` -> the bare name or address."""
    if host.startswith("["):
        return host[1 : host.index("]")] if "]" in host else host
    return host.split(":", 1)[0] if host.count(":") == 1 else host


class Target:
    """Where to send a request, how, and what the answer must hold."""

    def __init__(self, name, scheme, host, port, path, **opts):
        self.name, self.scheme, self.host, self.port, self.path = name, scheme, host, port, path
        self.method = opts.get("method") or "GET"
        self.status_codes = list(opts.get("status_codes") or [200])
        self.timeout = float(opts.get("timeout") or 5)
        self.validate_certs = opts.get("validate_certs") is not False
        self.ca_path, self.sni_host = opts.get("ca_path"), opts.get("sni_host")
        self.host_header = opts.get("host_header")
        self.headers = dict(opts.get("headers") or {})
        self.json = dict(opts.get("json") or {})
        self.return_body_fields = list(opts.get("return_body_fields") or [])
        self._ssl_context = None

    @property
    def url(self):
        host = "[%s]" % self.host if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else ":%d" % self.port
        return "%s://%s%s%s" % (self.scheme, host, port, self.path)

    @property
    def server_name(self):
        """The TLS name sent as SNI and checked against the certificate."""
        return self.sni_host or (self.host_header and strip_port(self.host_header)) or self.host

    def request_headers(self):
        headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"}
        headers.update(self.headers)
        host = self.host_header
        if not host and self.sni_host:
            port = "" if DEFAULT_PORTS[self.scheme] == self.port else ":%d" % self.port
            host = self.sni_host + port
        if host:
            for key in [k for k in headers if k.lower() == "host"]:
                del headers[key]
            headers["Host"] = host
        return headers

    def ssl_context(self):
        if self._ssl_context is None:
            if not self.validate_certs:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif self.ca_path and os.path.isdir(self.ca_path):
                context = ssl.create_default_context(capath=self.ca_path)
            else:
                context = ssl.create_default_context(cafile=self.ca_path)
            self._ssl_context = context
        return self._ssl_context


def _parse_url(url, err):
    """(scheme, host, port, path) of a URL, or None after reporting why not."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return err("url %r must start with http:// or https://" % url)
    if parts.username is not None or parts.password is not None:
        err("url must not carry credentials; send them with headers")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        return err("url %r has an invalid port" % url)
    if not parts.hostname:
        return err("url %r has no host" % url)
    return scheme, parts.hostname, port, (parts.path or "/") + ("?" + parts.query if parts.query else "")


def resolve(own, defaults, label):
    """One endpoint (or the distribution) as a Target. Returns (Target or None, errors).

    ``own`` holds the endpoint's options as the argument spec left them (None: not given);
    ``defaults`` the module-level connection options, json and return_body_fields: an own value
    replaces the default for every key in ``defaults``; headers merge. An endpoint that asks for
    HEAD itself does not inherit body expectations it cannot meet; TLS-only defaults (ca_path,
    sni_host) are ignored for http.
    """
    errors = []

    def err(message):
        errors.append("%s: %s" % (label, message))

    opts = dict(defaults)
    opts.update((k, v) for k, v in own.items() if v is not None and k in defaults)
    opts["headers"] = dict(defaults.get("headers") or {}, **(own.get("headers") or {}))
    if own.get("method") == "HEAD":
        opts.update((k, own.get(k)) for k in ("json", "return_body_fields"))
    if own.get("url"):
        where = _parse_url(own["url"], err)
    else:
        host = own["host"].strip()
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        scheme = opts.get("scheme") or "http"
        port = DEFAULT_PORTS[scheme] if opts.get("port") is None else opts["port"]
        where = scheme, host, port, "/" if opts.get("path") is None else opts["path"]
        if not where[3].startswith("/"):
            err("path %r must start with /" % where[3])
    if where is None:
        return None, errors
    scheme, host, port, path = where
    if not 0 < port < 65536:
        err("port %r is out of range 1-65535" % port)
    bad_codes = [str(c) for c in opts.get("status_codes") or [] if not 100 <= c <= 599]
    if bad_codes:
        err("status_codes must be HTTP status codes (100-599), got %s" % ", ".join(bad_codes))
    for kind, paths in (
        ("json path", opts.get("json") or {}),
        ("return_body_fields entry", opts.get("return_body_fields") or []),
    ):
        errors.extend("%s: %s %r %s" % (label, kind, p, path_error(p)) for p in paths if path_error(p))
    if opts.get("method") == "HEAD" and (opts.get("json") or opts.get("return_body_fields")):
        err("json and return_body_fields need a response body, which HEAD does not get; use method GET")
    if opts.get("timeout") is not None and opts["timeout"] <= 0:
        err("timeout must be greater than 0, got %s" % opts["timeout"])
    if scheme == "http":
        errors.extend(
            "%s: %s only applies to https endpoints" % (label, k) for k in ("ca_path", "sni_host") if own.get(k)
        )
        opts["ca_path"] = opts["sni_host"] = None
    if opts.get("ca_path") and not os.path.exists(opts["ca_path"]):
        err("ca_path %s does not exist" % opts["ca_path"])
    if errors:
        return None, errors
    opts = dict((k, v) for k, v in opts.items() if k not in ("scheme", "port", "path"))
    target = Target(own.get("name") or own.get("url") or "", scheme, host, port, path, **opts)
    target.name = target.name or target.url
    return target, errors


# --------------------------------------------------------------------------- the request


class ProbeError(Exception):
    """A request that got no HTTP response; ``message`` says why in operator terms."""

    def __init__(self, message, latency_ms=None):
        Exception.__init__(self, message)
        self.message, self.latency_ms = message, latency_ms


class Response:
    def __init__(self, status, headers, body, latency_ms):
        self.status, self.headers, self.body, self.latency_ms = status, headers, body, latency_ms

    def header(self, name):
        return self.headers.get(name.lower())


class _SNIHTTPSConnection(HTTPSConnection):
    """HTTPS to one address with the SNI / certificate name of another."""

    def __init__(self, target):
        HTTPSConnection.__init__(self, target.host, target.port, timeout=target.timeout, context=target.ssl_context())
        self._target = target

    def connect(self):
        HTTPConnection.connect(self)
        self.sock = self._target.ssl_context().wrap_socket(self.sock, server_hostname=self._target.server_name)


def describe_error(exc, target):
    """Turn a connection-level exception into a short operator-facing reason."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = getattr(exc, "verify_message", None) or str(exc)
        return "TLS certificate verification failed for %s: %s" % (target.server_name, reason)
    if isinstance(exc, ssl.SSLError):
        if "timed out" in str(exc):
            return "timed out after %g s (TLS handshake)" % target.timeout
        return "TLS error: %s" % (getattr(exc, "reason", None) or exc)
    reasons = (
        ((socket.timeout, TimeoutError), "timed out after %g s" % target.timeout),
        (ConnectionRefusedError, "connection refused"),
        (ConnectionResetError, "connection reset by peer"),
        (socket.gaierror, "cannot resolve %s: %s" % (target.host, getattr(exc, "strerror", None) or exc)),
        (RemoteDisconnected, "server closed the connection without a response"),
        (HTTPException, "invalid HTTP response (%s: %s)" % (type(exc).__name__, exc)),
        (OSError, "connection error: %s" % (getattr(exc, "strerror", None) or exc)),
    )
    for kinds, reason in reasons:
        if isinstance(exc, kinds):
            return reason
    return "unexpected error: %s: %s" % (type(exc).__name__, exc)


def http_request(target, clock=time.monotonic):
    """One request to ``target``. Returns a Response or raises ProbeError."""
    started = clock()
    if target.scheme == "https":
        conn = _SNIHTTPSConnection(target)
    else:
        conn = HTTPConnection(target.host, target.port, timeout=target.timeout)
    try:
        conn.request(target.method, target.path, headers=target.request_headers())
        resp = conn.getresponse()
        body = b"" if target.method == "HEAD" else resp.read(MAX_BODY_BYTES)
        headers = dict((k.lower(), v) for k, v in resp.getheaders())
        return Response(resp.status, headers, body, round((clock() - started) * 1000.0, 1))
    except Exception as exc:  # every failure becomes a reason in the report, never a traceback
        raise ProbeError(describe_error(exc, target), round((clock() - started) * 1000.0, 1)) from None
    finally:
        conn.close()


def status_problem(status, accepted):
    if len(accepted) == 1:
        return "HTTP status %d, expected %d" % (status, accepted[0])
    return "HTTP status %d, expected one of %s" % (status, ", ".join(str(c) for c in accepted))
