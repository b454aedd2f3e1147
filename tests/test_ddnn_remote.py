"""DDNN devices as separate processes: same answers as in process, dead and late devices missing."""
import os

import numpy as np
import pytest

from edgebnn import Coordinator, load_ddnn, save_ddnn
from edgebnn.tiers.ddnn import NoDevicesError
from edgebnn.net.remote import RemoteModel
from test_ddnn import CLASSES, answers_as_in_process, assert_same, random_ddnn, views
from conftest import ROOT, Process, fault_server

DEVICES = 3


@pytest.fixture(scope="module")
def ddnn_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddnn") / "ddnn.h5"
    save_ddnn(random_ddnn(DEVICES, "concat", "concat", threshold=0.5), path)
    return path


def start_devices(path):
    return [Process(["-m", "edgebnn.net.serve", str(path), "--port", "0", "--section",
                     f"devices/{i}", "--name", f"device{i}"]) for i in range(DEVICES)]


@pytest.fixture(scope="module")
def devices(ddnn_path):
    processes = start_devices(ddnn_path)
    yield processes
    for process in processes:
        process.stop()


def coordinator(ddnn, processes, deadline=2.0):
    return Coordinator(ddnn, [p.url for p in processes], deadline=deadline)


def test_device_process_answers_scores_and_features(ddnn_path, devices):
    ddnn = load_ddnn(ddnn_path)
    view = views(DEVICES)[1]
    scores = RemoteModel(devices[1].url, "device1", output="scores").infer(view)
    features = RemoteModel(devices[1].url, "device1", output="features", dtype=None).infer(view)
    expected = ddnn.devices[1].run(view)
    np.testing.assert_array_equal(scores, expected.scores)
    assert features.dtype == np.uint8
    np.testing.assert_array_equal(features, expected.features)
    metadata = RemoteModel(devices[1].url, "device1").metadata()
    assert [o["name"] for o in metadata["outputs"]] == ["scores", "features"]
    assert metadata["parameters"]["classes"] == CLASSES


def test_multi_process_answers_equal_in_process(ddnn_path, devices):
    ddnn = load_ddnn(ddnn_path)
    remote = coordinator(ddnn, devices)
    try:
        assert answers_as_in_process(remote, ddnn, 8) == {"local", "cloud"}
        assert remote.missing == [0] * DEVICES
    finally:
        remote.close()


def test_a_device_killed_mid_run_is_missing(ddnn_path):
    ddnn = load_ddnn(ddnn_path)
    processes = start_devices(ddnn_path)
    remote = coordinator(ddnn, processes)
    try:
        for seed in range(3):
            assert_same(remote.classify(views(DEVICES, seed), 0.0), ddnn.classify(views(DEVICES, seed), 0.0))
        processes[1].kill()
        for seed in range(3, 7):
            sample = views(DEVICES, seed)
            result = remote.classify(sample, 0.0)
            sample[1] = None
            assert_same(result, ddnn.classify(sample, 0.0))
            assert result.bytes_sent[1] == 0
        assert remote.missing[1] == 4 and remote.missing[0] == remote.missing[2] == 0
        for process in processes[::2]:
            process.kill()
        with pytest.raises(NoDevicesError):
            remote.classify(views(DEVICES), 0.0)
    finally:
        remote.close()
        for process in processes:
            process.stop()


@pytest.mark.parametrize("mode", ["slow", "garbage", "error"])
def test_a_late_or_broken_device_is_missing(ddnn_path, devices, mode):
    ddnn = load_ddnn(ddnn_path)
    bad = fault_server(mode, 3)
    remote = coordinator(ddnn, [devices[0], bad, devices[2]], deadline=0.5)
    try:
        sample = views(DEVICES, 4)
        result = remote.classify(sample, 0.0)
        sample[1] = None
        assert_same(result, ddnn.classify(sample, 0.0))
    finally:
        remote.close()
        bad.kill()


def test_cloud_section_served_alone(ddnn_path):
    ddnn = load_ddnn(ddnn_path)
    cloud = start_section(ddnn_path, "cloud")
    try:
        outputs = [ddnn.devices[i].run(v) for i, v in enumerate(views(DEVICES))]
        merged = np.concatenate([o.features for o in outputs])
        logits = RemoteModel(cloud.url, "cloud").infer(merged)
        np.testing.assert_array_equal(logits, ddnn.cloud_logits([o.features for o in outputs]))
    finally:
        cloud.stop()


def start_section(path, section):
    return Process(["-m", "edgebnn.net.serve", str(path), "--port", "0", "--section", section,
                    "--name", section])


def test_every_tier_a_process_answers_as_in_process(ddnn_path, devices):
    """Devices and cloud as processes, the coordinator as the gateway; then the cloud dies."""
    ddnn = load_ddnn(ddnn_path)
    cloud = start_section(ddnn_path, "cloud")
    remote = Coordinator(ddnn, [p.url for p in devices], deadline=2.0, cloud=cloud.url,
                         cloud_timeout=2.0)
    try:
        assert "cloud" in answers_as_in_process(remote, ddnn, thresholds=(0.0, 0.5))
        cloud.kill()
        sample = views(DEVICES, 9)
        result = remote.classify(sample, 0.0)        # every sample goes up; nobody answers
        expected = ddnn.classify(sample, 1.0)         # the local answer
        assert result.exit == "local-fallback"
        assert (result.label, list(result.logits)) == (expected.label, list(expected.logits))
        assert remote.missing == [0] * DEVICES
    finally:
        remote.close()
        cloud.stop()


def test_edge_and_cloud_processes_answer_as_in_process(tmp_path_factory):
    """Devices, edge and cloud each a process; then the cloud dies, then the edge."""
    path = tmp_path_factory.mktemp("edge") / "edge.h5"
    save_ddnn(random_ddnn(DEVICES, "max", "concat", edge=True, edge_threshold=0.6), path)
    ddnn = load_ddnn(path)
    devices, edge, cloud = start_devices(path), start_section(path, "edge"), start_section(path, "cloud")
    remote = Coordinator(ddnn, [p.url for p in devices], deadline=2.0, cloud=cloud.url,
                         edge=edge.url, cloud_timeout=2.0)
    try:
        exits = set()
        for seed in range(8):
            for thresholds in ((0.0, 0.0), (0.0, 1.0), (0.0, 0.6), (1.0, 0.0)):
                local = ddnn.classify(views(DEVICES, seed), *thresholds)
                assert_same(remote.classify(views(DEVICES, seed), *thresholds), local)
                exits.add(local.exit)
        assert exits == {"local", "edge", "cloud"}
        cloud.kill()
        result = remote.classify(views(DEVICES), 0.0, 0.0)
        assert result.exit == "edge-fallback"
        np.testing.assert_array_equal(result.logits, ddnn.classify(views(DEVICES), 0.0, 1.0).logits)
        edge.kill()
        result = remote.classify(views(DEVICES), 0.0, 0.0)
        assert result.exit == "local-fallback"
        np.testing.assert_array_equal(result.logits, ddnn.classify(views(DEVICES), 1.0).logits)
    finally:
        remote.close()
        for process in devices + [edge, cloud]:
            process.stop()


def test_unknown_section_is_refused(ddnn_path):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "edgebnn.net.serve", str(ddnn_path), "--port", "0",
                           "--section", "devices/9"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "section 'devices/9' not in" in done.stderr and "devices/0..devices/2" in done.stderr


def test_processes_example_on_the_shipped_edge_model(mnist_dir):
    """examples/ddnn_processes.py as the README runs it: eight server processes, device 0 killed
    halfway, every answer the in-process DDNN's, every tier answering some."""
    import ddnn_processes   # examples/ is on the path: see conftest.py
    model = os.path.join(ROOT, "models", "ddnn", "max-concat-edge.h5")
    summary = ddnn_processes.main(["--data", mnist_dir, "--model", model, "--samples", "40",
                                   "--threshold", "0.1", "--edge-threshold", "0.3"])
    assert summary["identical"] == 40 and summary["device0_missed"] == 20
    assert set(summary["exits"]) == {"local", "edge", "cloud"}


class Lying:
    """A device tier that answers what a broken or hostile peer might send in place of
    some of its honest outputs."""

    def __init__(self, honest, lie):
        self.honest, self.lie = honest, lie

    def outputs(self, x, names):
        return self.lie(dict(self.honest.outputs(x, names)))

    def close(self):
        pass


def with_scores(value):
    return lambda found: dict(found, scores=value) if "scores" in found else found


def with_features(value):
    return lambda found: dict(found, features=value(found["features"])) if "features" in found \
        else found


SCORE_LIES = {"NaN scores": with_scores(np.full(3, np.nan, np.float32)),
              "infinite scores": with_scores(np.array([np.inf, 0, 0], np.float32)),
              "scores as a list": with_scores([1.0, 2.0, 3.0]),
              "scores as text": with_scores(np.array(["a", "b", "c"])),
              "two classes": with_scores(np.zeros(2, np.float32)),
              "no scores": lambda found: {}}


@pytest.mark.parametrize("lie", sorted(SCORE_LIES))
def test_a_device_sending_bad_scores_is_missing_not_an_error(lie):
    from edgebnn.tiers.placement import LocalTier
    ddnn = random_ddnn(devices=3)
    tiers = [LocalTier(device) for device in ddnn.devices]
    coordinator = Coordinator(ddnn, [Lying(tiers[0], SCORE_LIES[lie])] + tiers[1:], deadline=5.0)
    try:
        for seed in range(4):
            sample = views(3, seed)
            assert_same(coordinator.classify(sample), ddnn.classify([None] + sample[1:]))
        assert coordinator.missing == [4, 0, 0]
    finally:
        coordinator.close()


@pytest.mark.parametrize("lie", ["stray padding bits", "wrong size", "floats"])
def test_a_device_sending_a_bad_feature_map_is_missing_from_the_cloud(lie):
    from edgebnn.tiers.placement import LocalTier
    change = {"stray padding bits": lambda m: m | 0xFF, "wrong size": lambda m: m[:-1],
              "floats": lambda m: m.astype(np.float32)}[lie]
    ddnn = random_ddnn(devices=3)
    tiers = [LocalTier(device) for device in ddnn.devices]
    coordinator = Coordinator(ddnn, [Lying(tiers[0], with_features(change))] + tiers[1:],
                              deadline=5.0)
    try:
        for seed in range(3):
            assert coordinator.classify(views(3, seed), threshold=0.0).exit == "cloud"   # up
        assert coordinator.missing == [3, 0, 0]         # its map, each time
    finally:
        coordinator.close()
