"""The binding's overhead: Sensorium.predict through Python against the same call in Rust.

The Rust side is the bench suite's `sensorium_latency_b1` and `sensorium_latency_b128` cases
(`vcortex bench --filter sensorium_latency`: `Sensorium::predict` on host images, wall clock,
median of the runs); the Python side is `vcortex.Sensorium.predict` on the very same model
(random weights of seed 11, 8000 neurons under the data key "bench") and the same batch sizes.
On a software adapter the suite shrinks its batches (÷ 32, so b128 runs 4 images) unless
`--full` is given; this script follows what the suite reports.

    python python/bench.py [--vcortex target/release/vcortex] [--reps 20] [--full]

Prints one row per case: the bench suite's figure (its own process), the same Rust call timed in
this process (`_time_native`, alternating rounds with Python's so both see the same load),
Python's, the difference of the last two, and whether it is within the budget (5 % or 50 µs,
whichever is larger).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# This file sits beside the package's source folder: import the installed package, not it.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import vcortex  # noqa: E402


def rust_cases(binary, reps, full):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "bench.json")
        cmd = [binary, "bench", "--filter", "sensorium_latency", "--json", out, "--reps", str(reps)]
        if full:
            cmd.append("--full")
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        rows = [json.loads(line) for line in open(out) if line.strip()]
    device = next((r for r in rows if r.get("case") == "device"), {})
    cases = {r["case"]: r["ms"] for r in rows if "ms" in r}
    return cases, bool(device.get("small", False)), device


def timed(model, images, reps, rounds=5):
    """Medians (ms) of Python's `predict` and of the same Rust call in this process
    (`_time_native`: `Sensorium::predict_full`, the GIL released), run in alternating rounds so
    that both see the same machine load."""
    native = model._m._time_native
    for _ in range(3):
        model.predict(images, data_key="bench", batch=len(images))
    native(images, "bench", 3)
    py, rs = [], []
    for _ in range(rounds):
        for _ in range(reps):
            t0 = time.perf_counter()
            model.predict(images, data_key="bench", batch=len(images))
            py.append((time.perf_counter() - t0) * 1e3)
        rs.extend(t * 1e3 for t in native(images, "bench", reps))
    return statistics.median(py), statistics.median(rs)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vcortex", default=os.path.join(HERE, "..", "target", "release", "vcortex"))
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--full", action="store_true", help="the standard batch sizes on a software adapter too")
    a = p.parse_args()
    rust, small, device = rust_cases(a.vcortex, a.reps, a.full)
    ctx = vcortex.default_context()
    model = vcortex.Sensorium._native_cls._bench_model(ctx._c)
    model = vcortex.Sensorium(model, ctx)
    print(f"adapter: {ctx.info()['name']} ({ctx.info()['backend']}); small suite: {small}")
    print(f"{'case':24} {'batch':>5} {'bench ms':>9} {'rust ms':>9} {'python ms':>10} {'overhead':>10}  within budget")
    ok = True
    for name, nominal in (("sensorium_latency_b1", 1), ("sensorium_latency_b128", 128)):
        if name not in rust:
            print(f"{name}: not in the bench output", file=sys.stderr)
            ok = False
            continue
        n = max(nominal // 32, 1) if small else nominal
        images = np.random.default_rng(nominal).uniform(-1, 1, (n, 1, 36, 64)).astype(np.float32)
        py, rs = timed(model, images, a.reps)
        diff = py - rs
        budget = max(0.05 * rs, 0.05)
        within = diff <= budget
        ok &= within
        print(f"{name:24} {n:>5} {rust[name]:>9.3f} {rs:>9.3f} {py:>10.3f} {diff * 1e3:>8.1f}µs  {'yes' if within else 'NO'}"
              f" (budget {budget * 1e3:.0f} µs)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
