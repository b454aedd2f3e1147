"""Misbehaving v2 servers for the fault tests, run as real processes.

    python tests/servers.py MODE [SECONDS]
Prints "listening on PORT" once bound to a free loopback port. Every mode
answers the model metadata of a 10-class "big" model (input UINT8
[-1, 28, 28], output "logits" FP32 [-1, 10]) and the server metadata; the
inference reply is what the mode says:
    slow       a valid reply after SECONDS
    drip       a valid reply, one byte every SECONDS
    huge       a reply that declares 200 MB (and starts sending them)
    chunked    200 MB sent in chunks, no length declared
    classes    a valid reply with 12 scores per sample
    name       a valid reply whose output is named "scores"
    one-class  metadata of one class (output [-1, 1]), replies of 1 score
    no-classes metadata without classes, output [-1, -1], replies of 1 score
    int8       a reply whose scores are INT8
    twice      two replies to each request, the second with another answer
    garbage    bytes that are not JSON
    error      HTTP 500 with a JSON error
    auth       a valid reply only with "Authorization: Bearer t0ken" and
               "Host: big.example.com" (else 401 / 404)
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

METADATA = {"name": "big", "versions": ["1"], "platform": "test",
            "inputs": [{"name": "input", "datatype": "UINT8", "shape": [-1, 28, 28]}],
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}],
            "parameters": {"classes": [str(d) for d in range(10)]}}


def metadata(mode):
    if mode == "one-class":
        return {**METADATA, "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 1]}],
                "parameters": {"classes": ["0"]}}
    if mode == "no-classes":
        return {key: value for key, value in METADATA.items() if key != "parameters"} | {
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, -1]}]}
    return METADATA


def reply(n, width=10, name="logits", datatype="FP32", top=3):
    scores = [[float(i == top) for i in range(width)] for _ in range(n)]
    return json.dumps({"model_name": "big", "outputs": [
        {"name": name, "datatype": datatype, "shape": [n, width],
         "data": [v if datatype == "FP32" else int(v) for row in scores for v in row]}]}).encode()


def handler(mode, seconds):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def refused(self):
            """In "auth" mode, a request without the token or the host is answered here."""
            if mode == "auth" and self.headers.get("Authorization") != "Bearer t0ken":
                self.send(401, b'{"error": "no token"}')
            elif mode == "auth" and self.headers.get("Host") != "big.example.com":
                self.send(404, b'{"error": "no such host"}')
            else:
                return False
            return True

        def do_GET(self):
            if not self.refused():
                body = {"/v2": {"name": "test", "extensions": []}}.get(self.path, metadata(mode))
                self.send(200, json.dumps(body).encode())

        def do_POST(self):
            if self.refused():
                return
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            n = request["inputs"][0]["shape"][0]
            if mode == "slow":
                time.sleep(seconds)
            if mode == "drip":
                body = reply(n)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(seconds)
            elif mode in ("huge", "chunked"):
                self.send_response(200)
                self.send_header(*(("Content-Length", str(200 << 20)) if mode == "huge"
                                   else ("Transfer-Encoding", "chunked")))
                self.end_headers()
                chunk = b"[" * (1 << 20)
                for _ in range(200):
                    self.wfile.write(chunk if mode == "huge" else b"100000\r\n" + chunk + b"\r\n")
            elif mode == "garbage":
                self.send(200, b"\x00\xffnot json at all")
            elif mode == "error":
                self.send(500, b'{"error": "internal failure"}')
            elif mode in ("one-class", "no-classes"):
                self.send(200, reply(n, 1))
            elif mode == "int8":
                self.send(200, reply(n, datatype="INT8"))
            elif mode == "twice":
                self.send(200, reply(n))
                self.send(200, reply(n, top=5))
            else:
                self.send(200, reply(n, 12 if mode == "classes" else 10,
                                     "scores" if mode == "name" else "logits"))

        def send(self, status, body):
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    return Handler


if __name__ == "__main__":
    mode = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(mode, seconds))
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
