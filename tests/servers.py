"""Misbehaving v2 servers for the fault tests, run as real processes.

    python tests/servers.py slow SECONDS | garbage | error PORT_FILE
Prints "listening on PORT" once bound to a free loopback port.
"""
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


def handler(mode, seconds):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.do_POST()

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if mode == "slow":
                time.sleep(seconds)
                body, status = b'{"outputs": []}', 200
            elif mode == "garbage":
                body, status = b"\x00\xffnot json at all", 200
            else:
                body, status = b'{"error": "internal failure"}', 500
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    return Handler


if __name__ == "__main__":
    mode = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    server = HTTPServer(("127.0.0.1", 0), handler(mode, seconds))
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
