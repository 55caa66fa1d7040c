"""python/examples/twin.py runs and agrees with PyTorch's responses."""

import os
import subprocess
import sys

from conftest import ROOT


def test_twin_example(tmp_path):
    script = os.path.join(ROOT, "python", "examples", "twin.py")
    r = subprocess.run([sys.executable, script, "--out", str(tmp_path / "twin.png")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "sessA" in r.stdout and "sessB" in r.stdout
