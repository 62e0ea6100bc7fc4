"""Lab stand-in for the API behind the certbot scenario's load balancer: /health only.

Answers GET/HEAD /health with the runbook's JSON ({"status": "ok", ...}) and 404 elsewhere.
Standard library only; port from argv (default 3000).
"""

import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ywlab-health"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass  # the scenario's client sends hundreds of requests; the journal is not the place for them

    def do_GET(self):
        if self.path == "/health":
            status, payload = 200, {"status": "ok", "server": socket.gethostname()}
        else:
            status, payload = 404, {"error": "not found"}
        body = (json.dumps(payload) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET


class Server(ThreadingHTTPServer):
    daemon_threads = True


if __name__ == "__main__":
    Server(("0.0.0.0", int(sys.argv[1]) if len(sys.argv) > 1 else 3000), Handler).serve_forever()  # noqa: S104
