"""Model servers started for a benchmark: the embedded one, or MLServer with edgebnn's runtime.

Each is a context manager giving the server's URL once its model is ready,
and stopping the server on exit.
"""
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from edgebnn import RemoteModel


@contextlib.contextmanager
def embedded(path, name="big", *options):
    """``edgebnn-serve PATH --name NAME OPTIONS...`` on a free loopback port."""
    process = subprocess.Popen([sys.executable, "-m", "edgebnn.net.serve", os.fspath(path),
                                "--port", "0", "--name", name, "--log-level", "WARNING", *options],
                               stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r":(\d+) ", line)
        if not match:
            raise RuntimeError(f"edgebnn-serve did not start: {line!r}")
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        process.terminate()
        process.wait()


@contextlib.contextmanager
def mlserver(path, name="big", max_batch_size=32, max_batch_time=0.001, workers=1, timeout=120):
    """``mlserver start`` on a folder with this model's settings (adaptive batching on)."""
    executable = shutil.which("mlserver", path=os.path.dirname(sys.executable)) or shutil.which("mlserver")
    if executable is None:
        raise RuntimeError("mlserver is not installed (pip install 'edgebnn[mlserver]')")
    with tempfile.TemporaryDirectory() as folder:
        ports = [_free_port() for _ in range(3)]
        with open(os.path.join(folder, "settings.json"), "w") as f:
            json.dump({"http_port": ports[0], "grpc_port": ports[1], "metrics_port": ports[2],
                       "parallel_workers": workers}, f)
        with open(os.path.join(folder, "model-settings.json"), "w") as f:
            json.dump({"name": name, "implementation": "edgebnn.mlserver.EdgeBNNRuntime",
                       "parameters": {"uri": os.path.abspath(path)},
                       "max_batch_size": max_batch_size, "max_batch_time": max_batch_time}, f)
        with open(os.path.join(folder, "mlserver.log"), "w") as log:
            process = subprocess.Popen([executable, "start", folder], stdout=log,
                                       stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{ports[0]}"
        try:
            until = time.monotonic() + timeout
            while not RemoteModel(url, name, deadline=1.0).ready():
                if process.poll() is not None or time.monotonic() > until:
                    with open(os.path.join(folder, "mlserver.log")) as log:
                        raise RuntimeError(f"mlserver did not start: {log.read()[-2000:]}")
                time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            process.wait()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
