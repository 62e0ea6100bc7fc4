# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lab stand-in for one Node.js API backend, for the nginx_lb scenario (standard library only).

Answers the runbook's health endpoints with the runbook's JSON, plus what the load-balancer drills
need: a path that does real work per request (CPU and waiting, like a handler that computes and then
awaits a query), a slow path, and a message endpoint that counts how often each request reached it,
so a test can prove that nginx never sent a non-idempotent request twice.

    GET  /health /health/detailed /health/ready /health/live
    GET  /work?cpu_ms=2&io_ms=3       spin the CPU for cpu_ms, then wait io_ms
    GET  /slow?ms=4000                wait, then answer 200
    GET|POST /api/messages?status=201&sleep_ms=0   counted per X-Test-Id header
    GET  /_calls?id=ID                how many /api/messages requests carried X-Test-Id: ID
    GET  /_headers                    the request headers as received (what the balancer passes on)
    GET  /_fault?path=P&status=503    from now on answer GET P with that status and an "unhealthy"
                                      body, as the API does while Redis or PostgreSQL is down
                                      (status=0 clears it; a restart clears every fault)

Like Node's http server it keeps idle client connections open for 5 s (keepAliveTimeout), and it
tells systemd it is ready (Type=notify) only once it listens, so `systemctl start` returning means
the port answers.
"""

import hashlib
import json
import os
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

NAME = os.environ.get("BACKEND_NAME") or socket.gethostname()
STARTED = time.monotonic()
CALLS = {}
CALLS_LOCK = threading.Lock()
FAULTS = {}  # path -> status: a dependency outage as the API would report it


def now():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def spin(cpu_ms):
    """Burn CPU for cpu_ms milliseconds (hashing, so it is real work, not a sleep)."""
    end = time.perf_counter() + cpu_ms / 1000.0
    digest = b"ywlab"
    while time.perf_counter() < end:
        digest = hashlib.sha256(digest).digest()
    return digest


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ywlab-backend"
    sys_version = ""
    timeout = 5  # idle keep-alive connections are closed after 5 s, as Node does
    disable_nagle_algorithm = True  # as Node does; else headers and body wait on delayed ACKs (40 ms)

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass  # wrk drives thousands of requests a second; the journal is not the place for them

    def reply(self, status, payload):
        body = (json.dumps(payload) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", NAME)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def params(self):
        parts = urlsplit(self.path)
        return parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}

    def number(self, query, key, default):
        try:
            return max(0.0, float(query.get(key, default)))
        except ValueError:
            return default

    def do_GET(self):
        path, query = self.params()
        fault = FAULTS.get(path)
        if fault:
            checks = {"database": "ok", "redis": "error: connect ECONNREFUSED 127.0.0.1:6379"}
            self.reply(fault, {"status": "unhealthy", "ready": False, "checks": checks, "server": NAME})
        elif path == "/_fault":
            status = int(self.number(query, "status", 0))
            if status:
                FAULTS[query.get("path", "")] = status
            else:
                FAULTS.pop(query.get("path", ""), None)
            self.reply(200, {"faults": FAULTS, "server": NAME})
        elif path == "/health":
            self.reply(200, {"status": "ok", "timestamp": now(), "server": NAME})
        elif path == "/health/detailed":
            checks = {"database": "ok", "redis": "ok"}
            self.reply(200, {"status": "healthy", "checks": checks, "timestamp": now(), "server": NAME})
        elif path == "/health/ready":
            self.reply(200, {"ready": True, "timestamp": now(), "server": NAME})
        elif path == "/health/live":
            uptime = round(time.monotonic() - STARTED, 2)
            self.reply(200, {"alive": True, "uptime": uptime, "timestamp": now(), "server": NAME})
        elif path == "/work":
            spin(self.number(query, "cpu_ms", 2))
            time.sleep(self.number(query, "io_ms", 3) / 1000.0)
            self.reply(200, {"ok": True, "server": NAME})
        elif path == "/slow":
            time.sleep(self.number(query, "ms", 4000) / 1000.0)
            self.reply(200, {"ok": True, "server": NAME})
        elif path == "/api/messages":
            self.messages(query)
        elif path == "/_headers":
            self.reply(200, {"headers": {k.lower(): v for k, v in self.headers.items()}, "server": NAME})
        elif path == "/_calls":
            with CALLS_LOCK:
                count = CALLS.get(query.get("id", ""), 0)
            self.reply(200, {"id": query.get("id", ""), "count": count, "server": NAME})
        else:
            self.reply(404, {"error": "not found"})

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        path, query = self.params()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if path == "/api/messages":
            self.messages(query)
        else:
            self.reply(404, {"error": "not found"})

    def messages(self, query):
        test_id = self.headers.get("X-Test-Id", "")
        with CALLS_LOCK:
            CALLS[test_id] = CALLS.get(test_id, 0) + 1
        time.sleep(self.number(query, "sleep_ms", 0) / 1000.0)
        status = int(self.number(query, "status", 201 if self.command == "POST" else 200))
        self.reply(status, {"accepted": status < 300, "server": NAME, "request_id": self.headers.get("X-Request-ID")})


def notify_systemd(message):
    """sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("PORT", "3000"))
    server = Server(("0.0.0.0", port), Handler)  # noqa: S104 - a backend listens for the LB
    notify_systemd("READY=1")
    server.serve_forever()


if __name__ == "__main__":
    main()
