"""The installed package as a user meets it: one import name, shipped models, commands.

CI runs this suite twice: against the editable install of the checkout, and
from outside the checkout against the wheel installed in a clean virtual
environment (with EDGEBNN_TEST_INSTALLED=1, which the last test checks).
"""
import importlib.metadata
import json
import os
import re
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest

import edgebnn
from edgebnn import InputError, Runtime, kernels, models
from edgebnn.images import read_image
from conftest import random_mlp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ("edgebnn-classify", "edgebnn-convert", "edgebnn-bench", "edgebnn-serve",
           "edgebnn-sign")


def run_python(*args, cwd=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def script(name):
    """The installed console script ``name`` (pip puts it beside the interpreter, or in
    /usr/local/bin for a system Python)."""
    for file in installed().files:
        if file.name == name:
            return str(file.locate())
    raise AssertionError(f"console script {name} is not installed")


def installed():
    """The installed distribution (an egg-info left in the checkout by a build is not one)."""
    found = [d for d in importlib.metadata.distributions(name="edgebnn") if d.read_text("RECORD")]
    assert len(found) == 1, [d.metadata["Version"] for d in found]
    return found[0]


def test_only_the_package_lands_at_the_top_of_site_packages():
    distribution = installed()
    editable = "editable" in (distribution.read_text("direct_url.json") or "")
    tops = set()
    for file in distribution.files:
        parts = file.parts
        if parts[0] == "..":               # console scripts, in the environment's bin/
            assert os.path.basename(str(file)) in SCRIPTS, file
            continue
        tops.add(parts[1] if parts[0] == "__pycache__" else parts[0])
    allowed = {"edgebnn", f"edgebnn-{distribution.version}.dist-info"}
    if editable:       # setuptools' editable hook: a .pth and its finder, both named for us
        allowed |= {name for name in tops if name.startswith(("__editable__.edgebnn-",
                                                              "__editable___edgebnn_"))}
    assert tops <= allowed, sorted(tops - allowed)


def test_version_matches_the_distribution():
    version = installed().version
    assert version.split("+")[0] == edgebnn.__version__
    assert version.endswith("+numpy") == (not kernels.c_available())


def test_console_scripts_are_installed():
    entry_points = installed().entry_points
    assert sorted(ep.name for ep in entry_points if ep.group == "console_scripts") == sorted(SCRIPTS)
    for name in SCRIPTS:
        done = subprocess.run([script(name), "--help"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (name, done.stderr)
        assert done.stdout.startswith(f"usage: {name} ")
        done = subprocess.run([script(name), "--version"], capture_output=True, text=True,
                              timeout=120)
        assert (done.returncode, done.stdout) == (0, f"{name} (edgebnn {edgebnn.__version__})\n")


COMMANDS = ["edgebnn", "edgebnn.net.serve", "edgebnn.packed.signing", "edgebnn.converters", "edgebnn.bench", "edgebnn.demo",
            "edgebnn.bench.fuzz", "edgebnn.bench.serving", "edgebnn.bench.biglittle",
            "edgebnn.bench.binary", "edgebnn.bench.float_chain", "edgebnn.bench.shipped"]


@pytest.mark.parametrize("module", COMMANDS)
def test_every_command_answers_help_and_version(module):
    done = run_python("-m", module, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m {module} ")   # as the command was started
    done = run_python("-m", module, "--version")
    assert (done.returncode, done.stdout) == (0, f"python -m {module} (edgebnn {edgebnn.__version__})\n")


def test_the_demo_classifies_the_shipped_digits():
    done = run_python("-m", "edgebnn.demo")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("16/16 right") == 2


def test_shipped_models_are_found_and_answer(backend):
    assert {"mnist-mlp.h5", "mnist-bnn.h5", "biglittle/little-binary-1-small.h5"} <= \
        set(models.available())
    samples = np.load(models.path("mnist-samples.npz"))
    for name in ("mnist-mlp.h5", "mnist-bnn.h5"):
        rt = Runtime(models.path(name))
        labels = [result.label for result in rt.classify_batch(samples["images"])]
        assert labels == list(samples["labels"])
    little = Runtime(models.path("biglittle/little-binary-1-small.h5"))
    assert little.classes == ["1", "other"]
    with pytest.raises(FileNotFoundError, match="mnist-bnn.h5"):
        models.path("no-such-model.h5")


def test_runtime_takes_a_shipped_name_as_the_commands_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Runtime("mnist-bnn.h5").model.layers[0].kind == "binary_dense"
    # a file of that name where the script runs is the one it means
    edgebnn.save_model(random_mlp([784, 3]), tmp_path / "mnist-bnn.h5")
    assert Runtime("mnist-bnn.h5").model.layers[0].kind == "dense"
    with pytest.raises(edgebnn.ModelFileError, match="no-such-model.h5: no such file"):
        Runtime("no-such-model.h5")


def test_import_loads_no_network_or_thread_pool_code():
    code = ("import sys, edgebnn; heavy = ['ssl', 'http.client', 'socket', 'concurrent.futures',"
            " 'edgebnn.net.remote', 'edgebnn.tiers.ddnn', 'edgebnn.tiers.cascade']; "
            "print([m for m in heavy if m in sys.modules])")
    done = run_python("-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    # and they come when asked for
    assert edgebnn.RemoteModel.__module__ == "edgebnn.net.remote"
    assert edgebnn.Policy.__module__ == "edgebnn.tiers.cascade"


def test_the_source_folder_refuses_to_be_imported_under_its_folder_name():
    done = run_python("-c", "import runtime", cwd=ROOT)
    assert done.returncode != 0
    assert "import edgebnn" in done.stderr


def test_a_missing_c_kernel_warns_once_and_names_the_cost(monkeypatch):
    monkeypatch.delenv(kernels.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setattr(kernels, "_c_backend", None)
    monkeypatch.setattr(kernels, "_c_error", "no module named '_bnn'")
    monkeypatch.setattr(kernels, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert kernels.get_kernels() is kernels.numpy_twin
        assert kernels.get_kernels() is kernels.numpy_twin
    assert len(caught) == 1
    assert issubclass(caught[0].category, kernels.SlowBackendWarning)
    assert "15-200x slower" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # chosen knowingly: no warning
        monkeypatch.setattr(kernels, "_warned", False)
        assert kernels.get_kernels("numpy") is kernels.numpy_twin


def test_result_to_dict_is_json_ready():
    rt = Runtime(models.path("mnist-mlp.h5"))
    result = rt.classify(np.load(models.path("mnist-samples.npz"))["images"][0])
    data = json.loads(json.dumps(result.to_dict()))
    assert data["label"] == result.label and data["exit"] == "local"
    assert data["name"] == result.name and abs(sum(data["scores"]) - 1) < 1e-9


# edgebnn-classify and its image reader ------------------------------------------

def png(pixels, filters=(0,)):
    """A PNG of ``pixels`` (H, W[, C]) uint8, rows filtered with ``filters`` in turn."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = pixels.reshape(height, width * channels).astype(np.int32)
    raw, previous = b"", np.zeros(width * channels, np.int32)
    for y, row in enumerate(rows):
        kind = filters[y % len(filters)]
        left = np.concatenate([np.zeros(channels, np.int32), row[:-channels]])
        corner = np.concatenate([np.zeros(channels, np.int32), previous[:-channels]])
        # (left + previous) // 2 would do, but NumPy 1.24 gets it wrong on i386 with AVX-512
        guess = [0 * row, left, previous, (left + previous) >> 1,
                 np.array([_paeth(a, b, c) for a, b, c in zip(left, previous, corner)],
                          np.int32).reshape(-1)][kind]
        raw += bytes([kind]) + ((row - guess) % 256).astype(np.uint8).tobytes()
        previous = row
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b""))


def _paeth(a, b, c):
    p = a + b - c
    return a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else \
        b if abs(p - b) <= abs(p - c) else c


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@pytest.mark.parametrize("shape", [(28, 28), (7, 5, 3), (4, 9, 4), (3, 3, 2)])
@pytest.mark.parametrize("filters", [(0,), (1,), (2,), (3,), (4,), (4, 1, 3, 0, 2)])
def test_png_reader_undoes_every_filter(tmp_path, shape, filters):
    pixels = np.random.default_rng(len(shape) + filters[0]).integers(0, 256, shape, np.uint8)
    path = tmp_path / "x.png"
    path.write_bytes(png(pixels, filters))
    np.testing.assert_array_equal(read_image(str(path)), pixels)


def test_pgm_reader_binary_and_text(tmp_path):
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    (tmp_path / "b.pgm").write_bytes(b"P5\n# a comment\n4 3\n255\n" + pixels.tobytes())
    (tmp_path / "t.pgm").write_text("P2 4 3 255 " + " ".join(map(str, pixels.reshape(-1))))
    (tmp_path / "w.pgm").write_bytes(b"P5 4 3 65535\n" + (pixels.astype(">u2") * 257).tobytes())
    for name in ("b.pgm", "t.pgm", "w.pgm"):
        np.testing.assert_array_equal(read_image(str(tmp_path / name)), pixels)


@pytest.mark.parametrize("mode, shape", [("L", (28, 28)), ("LA", (9, 7, 2)), ("RGB", (9, 7, 3)),
                                         ("RGBA", (5, 13, 4)), ("I;16", (6, 11))])
def test_png_and_pgm_written_by_pillow_read_as_pillow_reads_them(tmp_path, mode, shape):
    image = pytest.importorskip("PIL.Image", reason="Pillow (the [plot] extra) writes the files")
    rng = np.random.default_rng(len(shape))
    pixels = rng.integers(0, 256, shape, np.uint8)
    if mode == "I;16":          # 16-bit grey, scaled to 8 bits: p * 257 reads as p
        written = image.fromarray(pixels.astype(np.uint16) * 257)
    else:
        written = image.fromarray(pixels, mode)
    saved = [tmp_path / "x.png"] + ([tmp_path / "x.pgm"] if mode in ("L", "I;16") else [])
    for path in saved:          # Pillow's defaults: adaptive PNG filters, binary PGM
        written.save(path)
        np.testing.assert_array_equal(read_image(str(path)), pixels)


def test_a_palette_png_from_pillow_is_refused_by_name(tmp_path):
    image = pytest.importorskip("PIL.Image", reason="Pillow (the [plot] extra) writes the files")
    path = tmp_path / "palette.png"
    image.fromarray(np.zeros((4, 4), np.uint8)).convert("P").save(path)
    with pytest.raises(InputError, match="colour type 3.*only 8/16-bit non-interlaced grey"):
        read_image(str(path))


@pytest.mark.parametrize("data, problem", [
    (b"GIF89a", "not a PNG or PGM"),
    (b"P5\n4 3\n255\n" + bytes(5), "not 12 values"),
    (b"P5\n99999 99999\n255\n", "over"),
    (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))[:-1]
     + b"\x00", "CRC"),
    (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1 << 20, 1 << 20, 8, 0, 0, 0, 0))
     + _chunk(b"IEND", b""), "over"),
    (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
     + _chunk(b"IDAT", zlib.compress(bytes(100))) + _chunk(b"IEND", b""), "not 6 bytes"),
])
def test_image_reader_refuses_broken_files_with_the_file_name(tmp_path, data, problem):
    path = tmp_path / "broken"
    path.write_bytes(data)
    with pytest.raises(InputError, match=problem) as caught:
        read_image(str(path))
    assert str(path) in str(caught.value)


def test_classify_command_prints_each_sample(tmp_path):
    samples = np.load(models.path("mnist-samples.npz"))
    images, labels = samples["images"], samples["labels"]
    np.save(tmp_path / "batch.npy", images[:3])
    np.save(tmp_path / "one.npy", images[3])
    (tmp_path / "digit.png").write_bytes(png(images[4], (4,)))
    (tmp_path / "digit.pgm").write_bytes(b"P5 28 28 255\n" + images[5].tobytes())
    files = [str(tmp_path / name) for name in ("batch.npy", "one.npy", "digit.png", "digit.pgm")]
    done = subprocess.run([script("edgebnn-classify"), "mnist-bnn.h5", *files, "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["label"] for a in answers] == list(labels[:6])
    assert answers[0]["file"].endswith("batch.npy[0]") and answers[0]["exit"] == "local"
    text = run_python("-m", "edgebnn", models.path("mnist-mlp.h5"), files[1])
    assert text.returncode == 0 and f": {labels[3]} '{labels[3]}' confidence" in text.stdout


def test_classify_command_exit_codes(tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 3), np.uint8))
    done = run_python("-m", "edgebnn", "mnist-bnn.h5", str(bad))
    assert done.returncode == 1 and "shape" in done.stderr
    done = run_python("-m", "edgebnn", str(tmp_path / "missing.h5"), str(bad))
    assert done.returncode == 2 and "no such file" in done.stderr


@pytest.mark.parametrize("array, message", [
    (np.zeros(784, np.uint8), r"x.npy: an array of shape \(784,\); the model takes one sample "
                              r"of shape \(28, 28\) or a batch of shape \(n, 28, 28\)"),
    (np.zeros((0, 28, 28), np.uint8), "x.npy: an empty batch"),
    (np.zeros((2, 28, 28), np.float32), r"x.npy\[0\]: input dtype float32, expected uint8"),
    (None, "x.npy: no such file")])
def test_classify_command_names_the_file_that_does_not_fit(tmp_path, array, message):
    if array is not None:
        np.save(tmp_path / "x.npy", array)
    done = run_python("-m", "edgebnn", "mnist-bnn.h5", str(tmp_path / "x.npy"))
    assert done.returncode == 1 and re.search(message, done.stderr), done.stderr
    assert "Traceback" not in done.stderr


def test_classify_command_reads_npz_and_refuses_an_unknown_backend_in_one_line(tmp_path):
    samples = np.load(models.path("mnist-samples.npz"))
    np.savez(tmp_path / "x.npz", x=samples["images"][:2])
    done = run_python("-m", "edgebnn", "mnist-bnn.h5", str(tmp_path / "x.npz"))
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 2
    bogus = subprocess.run([sys.executable, "-m", "edgebnn", "mnist-bnn.h5", str(tmp_path / "x.npz")],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "EDGEBNN_BACKEND": "bogus"})
    assert bogus.returncode == 2 and bogus.stderr.startswith("error: EDGEBNN_BACKEND='bogus'")


@pytest.mark.parametrize("command", [["-m", "edgebnn.bench", "latency", "mnist-bnn.h5", "--runs", "3"],
                                     ["-m", "edgebnn.converters", "--help"],
                                     ["-m", "edgebnn.demo"]])
def test_commands_end_quietly_when_their_reader_goes_away(command):
    reader = subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    reader.stdout.close()                  # as `| head -0` does
    _, error = reader.communicate(timeout=120)
    assert b"Traceback" not in error and b"BrokenPipe" not in error, error


def test_suite_runs_against_the_installed_wheel():
    if os.environ.get("EDGEBNN_TEST_INSTALLED") != "1":
        pytest.skip("the editable run; CI sets EDGEBNN_TEST_INSTALLED=1 for the wheel run")
    location = os.path.realpath(edgebnn.__file__)
    assert not location.startswith(os.path.realpath(ROOT) + os.sep), location
    assert location.startswith(os.path.realpath(sys.prefix)), location
