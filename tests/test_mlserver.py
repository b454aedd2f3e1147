"""The remote tier on MLServer (the real server, ``mlserver start``, at its default settings):
Big-Little cascades and a DDNN whose devices and cloud are MLServer models."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip("mlserver.model", reason="MLServer is an optional extra: pip install '.[mlserver]'")

from conftest import ROOT, assert_same_sums, random_mlp                   # noqa: E402
from edgebnn import Dense, Model, Policy, RemoteModel, Runtime, save_ddnn, save_model  # noqa: E402
from edgebnn import Coordinator, load_ddnn                                # noqa: E402
from test_ddnn import answers_as_in_process, random_ddnn                  # noqa: E402

DEVICES = 3
START_SECONDS = 120


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_mlserver(folder, env=None, args=None):
    """``mlserver start FOLDER`` (or ``mlserver ARGS``); its URL once ``names`` are ready
    (see ``wait``)."""
    mlserver = shutil.which("mlserver", path=os.path.dirname(sys.executable)) or shutil.which("mlserver")
    log = open(folder / "mlserver.log", "w")
    process = subprocess.Popen([mlserver, *(args or ["start", str(folder)])], stdout=log,
                               stderr=subprocess.STDOUT, cwd=folder, env={**os.environ, **(env or {})})
    log.close()
    return process


def wait(process, folder, url, names):
    until = time.monotonic() + START_SECONDS
    while not all(RemoteModel(url, name, deadline=1.0).ready() for name in names):
        if process.poll() is not None or time.monotonic() > until:
            process.kill()
            raise RuntimeError(f"mlserver did not start: {(folder / 'mlserver.log').read_text()[-3000:]}")
        time.sleep(0.5)


def model_settings(folder, name, uri, **extra):
    folder.mkdir()
    settings = {"name": name, "implementation": "edgebnn.mlserver.EdgeBNNRuntime",
                "parameters": {"uri": str(uri), "version": "1", "extra": extra}}
    if name == "big":          # adaptive batching, as examples/mlserver-big/ sets it
        settings.update(max_batch_size=16, max_batch_time=0.005)
    (folder / "model-settings.json").write_text(json.dumps(settings))


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory):
    """One MLServer serving the big net, a DDNN's three devices and its cloud section."""
    folder = tmp_path_factory.mktemp("mlserver")
    big = random_mlp([784, 32, 10], seed=3, input_shape=(28, 28), input_dtype="uint8", scale=1 / 255)
    save_model(big, folder / "big.h5")
    save_ddnn(random_ddnn(DEVICES, "concat", "concat", threshold=0.5), folder / "ddnn.h5")
    model_settings(folder / "big", "big", folder / "big.h5")
    for i in range(DEVICES):
        model_settings(folder / f"device{i}", f"device{i}", folder / "ddnn.h5", section=f"devices/{i}")
    model_settings(folder / "cloud", "cloud", folder / "ddnn.h5", section="cloud")
    port = free_port()
    (folder / "settings.json").write_text(json.dumps(
        {"http_port": port, "grpc_port": free_port(), "metrics_port": free_port()}))
    process = start_mlserver(folder)
    url = f"http://127.0.0.1:{port}"
    wait(process, folder, url, ["big", "cloud"] + [f"device{i}" for i in range(DEVICES)])
    yield url, folder
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def littles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("little")
    for name, bias in (("claims", [12.0, 0.0]), ("unsure", [0.0, 12.0])):
        save_model(Model([Dense(np.zeros((2, 784)), bias)], (28, 28), "uint8", 1 / 255,
                         classes=["3", "other"]), folder / f"{name}.h5")
    return folder


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def test_metadata_has_the_batch_axis_and_the_classes(mlserver):
    url, _ = mlserver
    with urllib.request.urlopen(f"{url}/v2/models/big/versions/1") as reply:
        metadata = json.load(reply)
    assert metadata["inputs"][0]["shape"] == [-1, 28, 28]
    assert [o["name"] for o in metadata["outputs"]] == ["logits", "probabilities"]
    assert metadata["parameters"]["classes"] == [str(d) for d in range(10)]
    assert RemoteModel(url, "big").spec()["binary"] is False      # MLServer speaks JSON only


def post(url, body):
    """``(status, reply)`` of a JSON inference request to the big model."""
    request = urllib.request.Request(f"{url}/v2/models/big/infer", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.mark.parametrize("data, datatype", [([300] + [0] * 783, "UINT8"), ([-1] + [0] * 783, "UINT8"),
                                            (["a"] * 784, "UINT8"), ([0.5] * 784, "FP32"),
                                            ([0] * 783, "UINT8")])
def test_a_bad_input_is_a_client_error(mlserver, data, datatype):
    url, _ = mlserver
    status, reply = post(url, {"inputs": [{"name": "input", "shape": [1, 28, 28] if len(data) == 784
                                           else [1, len(data)], "datatype": datatype, "data": data}]})
    assert 400 <= status < 500, (status, reply)
    good = {"inputs": [{"name": "input", "shape": [1, 28, 28], "datatype": "UINT8",
                        "data": [0] * 784}]}
    assert post(url, good)[0] == 200                    # and it keeps answering


@pytest.mark.parametrize("policy", ["local", "sequential", "parallel", "remote"])
@pytest.mark.parametrize("little", ["claims", "unsure"])
def test_cascade_on_mlserver_answers_as_in_process(mlserver, littles, policy, little):
    url, folder = mlserver
    rt = Runtime(littles / f"{little}.h5", remote=RemoteModel(url, "big", deadline=30.0),
                 policy=Policy(policy))
    alone, big = Runtime(littles / f"{little}.h5"), Runtime(folder / "big.h5")
    for x in images(6, seed=len(policy)):
        result = rt.classify(x)
        local = alone.classify(x)
        goes_up = policy == "remote" or (policy != "local" and little == "unsure")
        expected = big.classify(x) if goes_up else local
        assert result.exit == ("remote" if goes_up else "local")
        assert (result.label, result.name) == (expected.label, expected.name)
        # MLServer may batch this request with another one in flight: BLAS then sums a
        # batch in another order than one sample, so float scores agree to rounding
        assert_same_sums(result.logits, expected.logits)
    assert rt.counters["remote_errors"] == 0
    batch = images(5, seed=11)
    results = rt.classify_batch(batch)
    assert [r.exit for r in results] == [rt.classify(x).exit for x in batch]


def test_adaptive_batching_answers_concurrent_devices_as_alone(mlserver):
    url, folder = mlserver
    big = Runtime(folder / "big.h5")
    samples = images(40, seed=3)
    remote = RemoteModel(url, "big", deadline=30.0)
    answers = [None] * len(samples)

    def device(i):
        answers[i] = remote.infer(samples[i])

    threads = [threading.Thread(target=device, args=(i,)) for i in range(len(samples))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = [big.classify(x).logits for x in samples]
    assert [a.argmax() for a in answers] == [e.argmax() for e in expected]
    assert_same_sums(answers, expected)


def test_ddnn_devices_and_cloud_on_mlserver_answer_as_in_process(mlserver):
    url, folder = mlserver
    ddnn = load_ddnn(folder / "ddnn.h5")
    coordinator = Coordinator(ddnn, [url] * DEVICES, deadline=30.0, cloud=url, cloud_timeout=30.0)
    try:
        assert answers_as_in_process(coordinator, ddnn) == {"local", "cloud"}
        assert coordinator.missing == [0] * DEVICES
    finally:
        coordinator.close()


def test_the_example_folder_serves_the_shipped_model(tmp_path):
    """``mlserver start examples/mlserver-big``, as the README tells users: its
    model-settings.json as it is, its settings.json on free ports."""
    example = tmp_path / "examples" / "mlserver-big"
    shutil.copytree(os.path.join(ROOT, "examples", "mlserver-big"), example)
    settings = json.loads((example / "model-settings.json").read_text())
    assert settings["implementation"] == "edgebnn.mlserver.EdgeBNNRuntime"
    assert settings["max_batch_size"] > 1 and settings["max_batch_time"] > 0
    shipped = (example / settings["parameters"]["uri"]).resolve()      # the same relative path
    shipped.parent.mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "models", "mnist-mlp.h5"), shipped)
    server = json.loads((example / "settings.json").read_text())
    assert server["host"] == "127.0.0.1"         # not every interface, unless the user says so
    server.update(http_port=free_port(), grpc_port=free_port(), metrics_port=free_port())
    (example / "settings.json").write_text(json.dumps(server))
    process = start_mlserver(example)
    try:
        url = f"http://127.0.0.1:{server['http_port']}"
        wait(process, example, url, [settings["name"]])
        samples = np.load(os.path.join(ROOT, "models", "mnist-samples.npz"))
        remote = RemoteModel(url, settings["name"], deadline=10.0)
        local = Runtime(shipped)
        batch = samples["images"][:4]        # a batch in BLAS: the same sums to float32 rounding
        assert_same_sums(remote.infer_batch(batch), [r.logits for r in local.classify_batch(batch)])
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_kserve_manifests_configure_a_working_mlserver(tmp_path):
    """MLServer started the way examples/kserve/servingruntime.yaml starts it in its
    container: no model-settings.json, the settings as environment variables, the
    model in a folder as KServe's storage initializer leaves it, the command line the
    Dockerfile's CMD declares; stopped as Kubernetes stops it, by SIGTERM to that
    process."""
    yaml = pytest.importorskip("yaml", reason="PyYAML reads the manifests")
    folder = os.path.join(ROOT, "examples", "kserve")
    with open(os.path.join(folder, "servingruntime.yaml")) as f:
        runtime = yaml.safe_load(f)
    with open(os.path.join(folder, "inferenceservice.yaml")) as f:
        service = yaml.safe_load(f)
    predictor = service["spec"]["predictor"]["model"]
    assert predictor["runtime"] == runtime["metadata"]["name"]
    assert predictor["modelFormat"]["name"] in [f["name"] for f in runtime["spec"]["supportedModelFormats"]]
    name = service["metadata"]["name"]
    env = {e["name"]: e["value"].replace("{{.Name}}", name)
           for e in runtime["spec"]["containers"][0]["env"]}
    models = tmp_path / "mnt-models"            # what the storage initializer leaves
    models.mkdir()
    shutil.copy(os.path.join(ROOT, "models", "mnist-mlp.h5"), models)
    port = free_port()
    env.update(MLSERVER_MODEL_URI=str(models), MLSERVER_MODELS_DIR=str(models),
               MLSERVER_HTTP_PORT=str(port), MLSERVER_GRPC_PORT=str(free_port()),
               MLSERVER_METRICS_PORT=str(free_port()))
    command = dockerfile_command()
    assert command[0] == "mlserver"
    args = [str(models) if arg == "/mnt/models" else arg for arg in command[1:]]
    process = start_mlserver(models, env, args)
    try:
        url = f"http://127.0.0.1:{port}"
        wait(process, models, url, [name])
        samples = np.load(os.path.join(ROOT, "models", "mnist-samples.npz"))
        remote = RemoteModel(url, name, version=env["MLSERVER_MODEL_VERSION"], deadline=10.0)
        local = Runtime(models / "mnist-mlp.h5")
        for x in samples["images"][:4]:
            np.testing.assert_array_equal(remote.infer(x), local.classify(x).logits)
        process.send_signal(signal.SIGTERM)         # what the kubelet sends the container's PID 1
        process.wait(timeout=30)
        with pytest.raises(ConnectionRefusedError):  # its workers went with it
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        process.kill()
        process.wait(timeout=30)


def dockerfile_command():
    """The CMD of examples/kserve/Dockerfile, which must be in exec form (a JSON array): the
    program it names is then the container's PID 1, not a shell that keeps the signal."""
    with open(os.path.join(ROOT, "examples", "kserve", "Dockerfile")) as f:
        commands = [line[len("CMD "):] for line in f if line.startswith("CMD ")]
    assert len(commands) == 1
    return json.loads(commands[0])
