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


def test_the_stub_lists_every_public_name():
    import ast

    import vcortex

    with open(os.path.join(ROOT, "python", "vcortex", "__init__.pyi")) as f:
        tree = ast.parse(f.read())
    stubbed = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    missing = set(vcortex.__all__) - stubbed
    assert not missing, f"not in __init__.pyi: {sorted(missing)}"
    for name in vcortex.__all__:
        assert getattr(vcortex, name).__doc__, f"{name} has no docstring"


def test_stream_video_example():
    script = os.path.join(ROOT, "python", "examples", "stream_video.py")
    r = subprocess.run([sys.executable, script], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "filling the receptive field" in r.stdout and "per-frame latency" in r.stdout
    assert "vs PyTorch's clip forward" in r.stdout
