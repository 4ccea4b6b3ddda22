#!/usr/bin/env python3
"""A service behind the gateway, in Python: it trusts the X-Entra-* headers
the gateway sets and never parses a token. It answers every request with
what it received, as JSON.

    python3 upstream/echo.py 8081
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    def answer(self):
        body = json.dumps({
            "method": self.command,
            "path": self.path,
            "caller": self.headers.get("X-Entra-Object-Id"),
            "headers": {k: v for k, v in self.headers.items()},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = answer

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8081
    ThreadingHTTPServer(("127.0.0.1", port), Echo).serve_forever()
