"""Helpers shared by the golden-data scripts scripts/golden_{torch,diffusers,
nflows,readout}.py (not a script itself). Each of them imports it with

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from golden_common import ...

so `python3 scripts/golden_X.py` works from the repository root.

What lives here is what the scripts do the same way:

- OUT_DIR (kernels-tests/data/golden) and `deterministic_torch()`;
- per-case seeding (`seeder(base)` -> `seed(name)`), so that each case draws
  its inputs from its own seed and adding or removing a case does not change
  the others; `randn` / `uniform` draw float32 tensors;
- the eval-case file pair NAME.case.safetensors / NAME.expected.safetensors:
  `save_file` (byte-stable layout), `write_all` and `check_all` (reload and
  compare metadata, dtypes, shapes and values; size limits), `expected_meta`;
- the eval-format tolerance shares and the lines the scripts print.

Changing anything here changes the files of all four scripts: rerun them and
check that the data stays byte-identical.
"""

import json
import os
import struct
import zlib

import torch
from safetensors import safe_open

OUT_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "kernels-tests", "data", "golden",
)


def deterministic_torch():
    """Deterministic algorithms, one CPU thread (call before drawing anything)."""
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)


# --------------------------------------------------------------------------- inputs

def seeder(base_seed):
    """Returns seed(name): seeds torch's global generator with
    base_seed + crc32(name)."""
    def seed(name):
        torch.manual_seed(base_seed + zlib.crc32(name.encode()))
    return seed


def randn(*shape, scale=1.0):
    """Standard normal float32 tensor times `scale`, contiguous."""
    return (torch.randn(*shape, dtype=torch.float32) * scale).contiguous()


def uniform(*shape, lo, hi):
    """Uniform float32 tensor in [lo, hi), contiguous."""
    return (torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo).contiguous()


def f64(t):
    return t.to(torch.float64)


def parse_bool(s):
    """An eval-format boolean parameter: "true" or "false"."""
    assert s in ("true", "false"), s
    return s == "true"


def check_params(name, params):
    """Eval-case parameters are metadata: strings only."""
    for k, v in params.items():
        assert isinstance(v, str), (name, k, v)


def as_f32(tensors):
    """{name: tensor} -> {name: detached contiguous float32 tensor}."""
    return {k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}


# --------------------------------------------------------------------------- files

DTYPES = {torch.float32: ("F32", "f"), torch.int64: ("I64", "q"), torch.bool: ("BOOL", "?")}


def save_file(tensors, path, metadata):
    """Write a safetensors file with a byte-stable layout (safetensors.torch
    writes the header keys in hash order, so reruns would differ byte-wise):
    header JSON with __metadata__ first (none when `metadata` is None), then
    the tensors in name order, header padded with
    spaces to a multiple of 8, tensors laid out by item size, largest first,
    then by name (name order when all are F32), as the safetensors library
    does, so every tensor is aligned. F32, I64 and BOOL (the buffers of a
    state_dict); a 0-dimensional tensor is written with shape [] and one
    element."""
    header = {} if metadata is None else {"__metadata__": dict(sorted(metadata.items()))}
    entries, blobs = {}, []
    offset = 0
    for name in sorted(tensors, key=lambda n: (-tensors[n].element_size(), n)):
        t = tensors[name]
        assert t.is_contiguous(), name
        code, fmt = DTYPES[t.dtype]
        data = struct.pack("<%d%s" % (t.numel(), fmt), *t.reshape(-1).tolist())
        entries[name] = {"dtype": code, "shape": list(t.shape),
                         "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header.update((name, entries[name]) for name in sorted(entries))
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for data in blobs:
            f.write(data)


def check_file(path, want_meta, want_tensors):
    """Reload `path` and compare its metadata, tensor names, dtypes, shapes and
    values (exactly) with `want_tensors`."""
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        assert meta == want_meta, (path, meta, want_meta)
        keys = set(f.keys())
        assert keys == set(want_tensors), (path, keys, set(want_tensors))
        for k, t in want_tensors.items():
            got = f.get_tensor(k)
            assert got.dtype == t.dtype, (path, k, got.dtype)
            assert list(got.shape) == list(t.shape), (path, k, got.shape, t.shape)
            assert torch.equal(got, t), (path, k)


def expected_meta(script, name, **versions):
    """Metadata of NAME.expected.safetensors: {"script", "torch", "case"} plus
    the versions of the other libraries that made it."""
    return {"script": script, "torch": torch.__version__, **versions, "case": name}


def case_paths(name):
    return (os.path.join(OUT_DIR, name + ".case.safetensors"),
            os.path.join(OUT_DIR, name + ".expected.safetensors"))


def write_all(files):
    """files: (name, op, params, inputs, outputs, expected metadata) per case.
    Writes NAME.case.safetensors (inputs as F32, metadata {"op": op, **params})
    and NAME.expected.safetensors (outputs as F32) into OUT_DIR; names must be
    unique, parameters strings and every value finite."""
    os.makedirs(OUT_DIR, exist_ok=True)
    names = set()
    for name, op, params, inputs, outputs, emeta in files:
        assert name not in names, name
        names.add(name)
        check_params(name, params)
        ins, outs = as_f32(inputs), as_f32(outputs)
        for t in list(ins.values()) + list(outs.values()):
            assert torch.isfinite(t).all(), name
        cp, ep = case_paths(name)
        save_file(ins, cp, metadata={"op": op, **params})
        save_file(outs, ep, metadata=emeta)


def check_all(files, max_file_bytes, max_total_bytes):
    """Reloads every file write_all(files) wrote (check_file) and checks the
    sizes: each file under max_file_bytes, all together under max_total_bytes.
    Returns the total size in bytes."""
    total = 0
    for name, op, params, inputs, outputs, emeta in files:
        cp, ep = case_paths(name)
        check_file(cp, {"op": op, **params}, as_f32(inputs))
        check_file(ep, emeta, as_f32(outputs))
        for p in (cp, ep):
            size = os.path.getsize(p)
            assert size < max_file_bytes, (p, size)
            total += size
    assert total < max_total_bytes, total
    return total


# --------------------------------------------------------------------------- reporting

def elementwise_share(got, ref):
    """max |got - ref| / (1e-4 + 1e-4 |ref|) in float64: the share of
    eval-format.md's elementwise tolerance used (1.0 = at the limit)."""
    got, ref = f64(got), f64(ref)
    return float(((got - ref).abs() / (1e-4 + 1e-4 * ref.abs())).max())


def reduction_share(got, ref):
    """max |got - ref| / (1e-3 max|ref| + 1e-4) in float64: the share of
    eval-format.md's tolerance for reductions used."""
    got, ref = f64(got), f64(ref)
    return float(((got - ref).abs() / (1e-3 * ref.abs().max() + 1e-4)).max())


def summary(n_cases, total_bytes):
    """The end of the first line each script prints."""
    return (f"wrote and checked {n_cases} cases ({2 * n_cases} files, {total_bytes} bytes) "
            f"in {os.path.relpath(OUT_DIR)}")


def describe(params, inputs, outputs):
    """'[k=v,...] input shapes -> output shapes' for a case's line."""
    shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in inputs.items())
    oshapes = ", ".join(f"{k}{list(v.shape)}" for k, v in outputs.items())
    ps = ",".join(f"{k}={v}" for k, v in params.items()) or "-"
    return f"[{ps}] {shapes} -> {oshapes}"


def prepare_neuralpredictors_import():
    """What neuralpredictors 0.3.0 needs before its import on this Python: the `collections.Iterable`
    alias it still uses, and a stand-in for torchvision, which `layers.cores` imports but the models
    built here never use (so it need not be installed)."""
    import collections
    import collections.abc
    import sys
    import types

    collections.Iterable = collections.abc.Iterable

    class _Stub(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            m = _Stub(f"{self.__name__}.{name}")
            sys.modules[m.__name__] = m
            return m

        def __call__(self, *a, **k):
            return self

    for name in ["torchvision", "torchvision.models", "torchvision.transforms"]:
        sys.modules.setdefault(name, _Stub(name))
