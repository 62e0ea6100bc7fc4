# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loopback fixtures for module integration tests.

Real HTTP(S) servers on 127.0.0.1 ephemeral ports, each in its own thread, a tiny
round-robin "balancer" that names the serving upstream in X-Upstream-Addr like nginx's
$upstream_addr, a throwaway CA, and a runner that executes a module through the real
`ansible` CLI and returns its JSON result. Nothing here talks to anything but loopback.
"""

import datetime
import http.client
import itertools
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
ANSIBLE = Path(sys.executable).with_name("ansible")
LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------- HTTP servers


class Reply:
    """What a fake endpoint answers. Behaviours return a Reply or a dict of its arguments."""

    def __init__(self, status=200, body=None, headers=None, delay=0.0):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.delay = delay

    @classmethod
    def of(cls, value):
        return value if isinstance(value, cls) else cls(**value)


class _Handler(BaseHTTPRequestHandler):
    server_version = "loopback-fixture"
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle plus delayed ACKs
    # add ~40 ms per response, which real servers (nginx, Node) do not.
    disable_nagle_algorithm = True

    def log_message(self, *_args):
        pass

    def _answer(self, with_body):
        server = self.server
        with server.lock:
            server.hits += 1
            if server.first_hit is None:
                server.first_hit = time.monotonic()
        reply = Reply.of(server.behaviour(self))
        if reply.delay:
            time.sleep(reply.delay)
        body = reply.body
        if body is None:
            body = b""
        elif not isinstance(body, bytes):
            body = json.dumps(body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            if with_body:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._answer(True)

    def do_HEAD(self):  # noqa: N802
        self._answer(False)


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, behaviour, tls_context=None):
        ThreadingHTTPServer.__init__(self, (LOOPBACK, 0), _Handler)
        self.behaviour = behaviour
        self.tls_context = tls_context
        self.lock = threading.Lock()
        self.hits = 0
        self.first_hit = None
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.server_address[1]

    @property
    def addr(self):
        return "%s:%d" % (LOOPBACK, self.port)

    def url(self, path="/health"):
        return "%s://%s%s" % ("https" if self.tls_context else "http", self.addr, path)

    def finish_request(self, request, client_address):
        # TLS handshake in the worker thread, so a client that aborts it cannot stall the others.
        if self.tls_context is not None:
            try:
                request = self.tls_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        ThreadingHTTPServer.finish_request(self, request, client_address)

    def stop(self):
        self.shutdown()
        self.server_close()


@pytest.fixture
def http_server():
    """Factory for loopback servers.

    ``http_server(status=200, body={...}, headers={...}, delay=0)`` answers the same every time;
    ``http_server(behaviour)`` calls ``behaviour(request_handler)`` for a Reply or a dict of its
    arguments. ``tls_context=`` makes it HTTPS.
    """
    servers = []

    def start(behaviour=None, tls_context=None, **fixed):
        if behaviour is None:
            reply = Reply(**fixed)

            def behaviour(_request, reply=reply):
                return reply

        server = LoopbackServer(behaviour, tls_context)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def refused_port():
    """A loopback port nothing listens on (bound, then closed)."""
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# --------------------------------------------------------------------------- balancer


class Balancer:
    """Round-robin reverse proxy over ``rotation`` (a list of "127.0.0.1:port" strings).

    Like nginx with ``proxy_next_upstream error``: when an upstream refuses the
    connection the next one in the rotation is tried, and the header lists both
    (``dead:1, live:2``). ``drop_header`` holds request numbers (0-based) whose
    response carries no X-Upstream-Addr header.
    """

    def __init__(self, http_server, rotation, drop_header=()):
        self.rotation = list(rotation)
        self.drop_header = set(drop_header)
        self.counter = itertools.count()
        self.lock = threading.Lock()
        self.server = http_server(self._route)

    @property
    def url(self):
        return self.server.url("/health")

    def _route(self, request):
        with self.lock:
            number = next(self.counter)
        tried = []
        for step in range(len(self.rotation)):
            upstream = self.rotation[(number + step) % len(self.rotation)]
            tried.append(upstream)
            host, port = upstream.rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            try:
                conn.request(request.command, request.path)
                resp = conn.getresponse()
                body = resp.read()
            except ConnectionRefusedError:
                continue
            finally:
                conn.close()
            headers = {} if number in self.drop_header else {"X-Upstream-Addr": ", ".join(tried)}
            return Reply(resp.status, body, headers)
        return Reply(502, {"error": "no live upstream"}, {"X-Upstream-Addr": ", ".join(tried)})


@pytest.fixture
def balancer(http_server):
    def start(rotation, drop_header=()):
        return Balancer(http_server, rotation, drop_header)

    return start


# --------------------------------------------------------------------------- TLS material


def _write_pem(path, data):
    path.write_bytes(data)
    return str(path)


def _make_ca(name):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_leaf(ca_key, ca_cert, dns_name):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


class TLSMaterial:
    """A CA, a server certificate for ``name`` signed by it (no IP SAN), and an unrelated CA."""

    name = "api.lab.test"

    def __init__(self, directory):
        from cryptography.hazmat.primitives import serialization

        pem = serialization.Encoding.PEM
        ca_key, ca_cert = _make_ca("upstream_health test CA")
        _other_key, other_cert = _make_ca("some other CA")
        key, cert = _make_leaf(ca_key, ca_cert, self.name)
        self.ca_path = _write_pem(directory / "ca.pem", ca_cert.public_bytes(pem))
        self.other_ca_path = _write_pem(directory / "other-ca.pem", other_cert.public_bytes(pem))
        self.cert_path = _write_pem(directory / "server.pem", cert.public_bytes(pem))
        self.key_path = _write_pem(
            directory / "server.key",
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        )

    def server_context(self, seen_names):
        """A server-side context that records the SNI name of each connection in ``seen_names``."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)

        def remember(ssl_socket, server_name, _context):
            ssl_socket.sni_name = server_name
            seen_names.append(server_name)

        context.sni_callback = remember
        return context


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory):
    return TLSMaterial(tmp_path_factory.mktemp("tls"))


# --------------------------------------------------------------------------- running the module


def _interpreter():
    # The module runs on the managed host's Python with no third-party package;
    # Debian's own python3 is the realistic one, the venv's the fallback.
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


@pytest.fixture(scope="session")
def run_module():
    """run_module(name, args, check=False, diff=False) -> the host's JSON result, via the real `ansible` CLI."""
    if not ANSIBLE.exists() or shutil.which(str(ANSIBLE)) is None:
        pytest.fail("ansible CLI not found next to %s" % sys.executable)

    def run(module, args, check=False, timeout=120, diff=False):
        env = dict(os.environ)
        env.update(
            ANSIBLE_STDOUT_CALLBACK="json",
            ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        )
        argv = [
            str(ANSIBLE),
            "localhost",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "ansible_python_interpreter=%s" % _interpreter(),
            "-m",
            module,
            "-a",
            json.dumps(args),
        ]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        proc = subprocess.run(
            argv, cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        try:
            data = json.loads(proc.stdout)
            result = data["plays"][0]["tasks"][0]["hosts"]["localhost"]
        except (ValueError, KeyError, IndexError):
            pytest.fail(
                "no JSON result from ansible (rc=%d)\nstdout:\n%s\nstderr:\n%s"
                % (proc.returncode, proc.stdout, proc.stderr)
            )
        result["_rc"] = proc.returncode
        return result

    return run
