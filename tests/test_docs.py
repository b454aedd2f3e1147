"""The docs as a user meets them: the site builds with warnings as errors, every Python
snippet of the README and of docs/ runs as written (against a real server where it names one)."""
import os
import re
import subprocess
import sys
import textwrap

import pytest

from conftest import Process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(os.path.join("docs", name) for name in
                               os.listdir(os.path.join(ROOT, "docs")) if name.endswith(".md"))

# What a snippet takes from the user's side (a sample from the sensor, the devices'
# views), given before the page's snippets run. Nothing here changes a snippet's own code.
GIVEN = {
    "docs/big-little.md": """
        import numpy as np
        frame = np.zeros((28, 28), np.uint8)
        frames = np.zeros((4, 28, 28), np.uint8)
    """,
    "docs/ddnn.md": """
        import numpy as np
        from edgebnn import load_ddnn as _load
        v0, v1, v2, v3, v4, v5 = views = [
            np.zeros(device.model.input_shape, device.model.input_dtype)
            for device in _load("models/ddnn/max-concat-h256.h5").devices]
    """,
}
NEEDS = {"docs/big-little.md": ["tritonclient"]}


def snippets(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        return re.findall(r"^```python\n(.*?)^```", f.read(), re.M | re.S)


def test_every_page_with_python_has_its_snippets_found():
    found = {page: len(snippets(page)) for page in PAGES}
    assert found["README.md"] == 1 and found["docs/sensor-scripts.md"] == 1
    assert found["docs/big-little.md"] == 2 and found["docs/ddnn.md"] == 1


@pytest.mark.parametrize("page", [page for page in PAGES if snippets(page)])
def test_the_python_snippets_run_as_written(page, tmp_path):
    for module in NEEDS.get(page, []):
        pytest.importorskip(module)
    code = "\n".join(snippets(page))
    server = None
    if "server:8000" in code:         # the page's own server: the shipped big net, served
        server = Process(["-m", "edgebnn.net.serve", "mnist-mlp.h5", "--name", "big",
                          "--port", "0", "--log-level", "WARNING"])
        code = code.replace("server:8000", f"127.0.0.1:{server.port}")
    (tmp_path / "page.py").write_text(textwrap.dedent(GIVEN.get(page, "")) + code)
    try:
        done = subprocess.run([sys.executable, str(tmp_path / "page.py")], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
    finally:
        if server is not None:
            assert server.stop() == 0
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                           "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert done.returncode == 0, done.stdout + done.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert "Classify one sample" in api           # the reference is made from the docstrings
