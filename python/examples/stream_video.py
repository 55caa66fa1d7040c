"""Streaming the Sensorium 2023 video twin from Python as a rig would: one new frame at a time,
each answered with that frame's rates once the receptive field is full, and every frame's latency
printed (the Python twin of examples/video.rs).

    python python/examples/stream_video.py [WEIGHTS.safetensors CONFIG.json [DATA_KEY]]
    python python/examples/stream_video.py --benchmark [--frames N]

Without arguments it streams the committed golden clip (kernels-tests/data/video/factorised, made
by scripts/golden_video.py) and checks the streamed rates against PyTorch's. With weights it
streams random frames into that model; ``--benchmark`` streams the benchmark's shape on random
weights (the factorized core with hidden [32, 64, 128], one mouse of 8000 neurons with a shifter,
frames of 36×64 with 3 channels; slow on a software adapter).
"""

import argparse
import json
import os
import time

import numpy as np

import vcortex

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN = os.path.join(ROOT, "kernels-tests", "data", "video", "factorised")

BENCHMARK = {
    "kind": "video",
    "core": {"type": "3D_factorised", "input_channels": 3, "hidden_channels": [32, 64, 128],
             "spatial_input_kernel": 11, "temporal_input_kernel": 11,
             "spatial_hidden_kernel": 5, "temporal_hidden_kernel": 5},
    "readouts": {"mouse0": {"neurons": 8000, "shifter": True}},
}



def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", help="WEIGHTS.safetensors CONFIG.json [DATA_KEY]")
    p.add_argument("--benchmark", action="store_true", help="the benchmark's shape on random weights")
    p.add_argument("--frames", type=int, default=30, help="frames to stream (random frames only)")
    a = p.parse_args()
    golden = None
    if a.benchmark:
        ctx = vcortex.default_context()
        model = vcortex.Video(vcortex.Video._native_cls._random(ctx._c, json.dumps(BENCHMARK), 1), ctx)
    elif len(a.files) >= 2:
        model = vcortex.Video.load(a.files[0], a.files[1])
    else:
        model = vcortex.Video.load(os.path.join(GOLDEN, "weights.safetensors"), os.path.join(GOLDEN, "config.json"))
        golden = vcortex.read_safetensors(os.path.join(GOLDEN, "inputs.safetensors"))
    key = a.files[2] if len(a.files) > 2 else model.data_keys[0]
    rng = np.random.default_rng(2)
    if golden is not None:
        video, pupil = golden["video"][:1], golden["pupil_center"][:1]
    else:
        video = rng.uniform(-1, 1, (1, model.input_channels, a.frames, 36, 64)).astype(np.float32)
        pupil = rng.uniform(-0.5, 0.5, (1, 2, a.frames)).astype(np.float32)
    _, _, t, h, w = video.shape
    print(f"{model.context.info()['name']}: {key}, frames of {list(video.shape[1:2]) + [h, w]}")
    stream = model.stream(key, 1, h, w)
    rates, times = [], []
    for f in range(t):
        start = time.perf_counter()
        y = stream.push(video[:, :, f : f + 1], pupil[:, :, f : f + 1])
        ms = (time.perf_counter() - start) * 1e3
        if y.shape[2] == 0:
            print(f"frame {f:3}: {ms:8.2f} ms (filling the receptive field)")
        else:
            print(f"frame {f:3}: {ms:8.2f} ms, {y.size} rates {list(y.shape)}, mean {y.mean():.4f}")
            rates.append(y)
            times.append(ms)
    if times:
        print(f"per-frame latency once the field is full: median {np.median(times):.2f} ms over {len(times)} frames")
    if golden is not None:
        want = vcortex.read_safetensors(os.path.join(GOLDEN, "expected.safetensors"))[key][:1]
        err = float(np.abs(np.concatenate(rates, axis=2) - want).max())
        print(f"streamed rates vs PyTorch's clip forward: max |difference| {err:.2e}")
        if err > 1e-4:
            raise SystemExit("the streamed rates differ from PyTorch's")


if __name__ == "__main__":
    main()
