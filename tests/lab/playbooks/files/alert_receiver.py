"""Lab only: an Alertmanager webhook receiver that keeps what arrives.

Every notification Alertmanager POSTs is appended to the log file as one JSON line,
{"received": <unix time>, "notification": <the body>}, so that a drill can tell when an alert was
delivered and when its resolution was. Usage: alert_receiver.py ADDRESS PORT LOGFILE
"""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    address, port, logfile = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                notification = json.loads(body)
            except ValueError:
                self.send_error(400, "not JSON")
                return
            with open(logfile, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"received": time.time(), "notification": notification}) + "\n")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    ThreadingHTTPServer((address, port), Handler).serve_forever()


if __name__ == "__main__":
    main()
