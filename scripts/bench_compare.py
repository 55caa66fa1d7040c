"""The speed-up table of one GPU session: vcortex's bench report beside the PyTorch peers.

    python3 scripts/bench_compare.py VC.json TORCH.jsonl > compare.md

Both files hold JSON objects with at least "case" and "ms", as JSON Lines or one JSON array
(`vcortex bench --json`, scripts/torch_peers.py; docs/bench.md has the fields). One Markdown row
per case either side has: PyTorch ms, vcortex ms, the speed-up PyTorch ms / vcortex ms (above 1:
vcortex is faster), vcortex's GB/s and its share of its own copy_256mib bandwidth, and its max
error against the CPU reference. A case one side lacks (or failed) shows a dash or that side's
error. A PyTorch row's "note" (how that peer differs from the vcortex case, or that it repeats
another row's time) is listed under the table. Ends with both device lines. Plain Python, no
packages."""
import json
import sys


def rows(path):
    text = open(path).read().strip()
    items = json.loads(text) if text.startswith("[") else [json.loads(l) for l in text.splitlines() if l.strip().startswith("{")]
    return {r["case"]: r for r in items if isinstance(r, dict) and "case" in r}


def cell(v, fmt):
    return "-" if v is None else format(v, fmt)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    vc, pt = rows(sys.argv[1]), rows(sys.argv[2])
    copy = vc.get("copy_256mib", {}).get("gbs")
    print("| case | PyTorch ms | vcortex ms | speed-up | vcortex GB/s | % of copy | max err |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for case in [c for c in list(vc) + [c for c in pt if c not in vc] if c != "device"]:
        a, b = pt.get(case, {}), vc.get(case, {})
        t_pt = None if "error" in a else a.get("ms")
        t_vc = None if "error" in b else b.get("ms")
        speed = t_pt / t_vc if t_pt and t_vc else None
        gbs = b.get("gbs") if t_vc else None
        share = 100.0 * gbs / copy if gbs and copy else None
        left = a.get("error", cell(t_pt, ".4f"))
        right = b.get("error", cell(t_vc, ".4f"))
        err = b.get("max_err")
        print(f"| {case} | {left} | {right} | {cell(speed, '.2f')} | {cell(gbs, '.1f')} | {cell(share, '.0f')} | {cell(err, '.2e')} |")
    notes = [(c, r["note"]) for c, r in pt.items() if c != "device" and r.get("note")]
    if notes:
        print("\nPyTorch peer notes:\n")
        for case, note in notes:
            print(f"- {case}: {note}")
    for name, side in (("vcortex", vc), ("PyTorch", pt)):
        d = side.get("device")
        if d:
            print(f"\n{name} device: " + ", ".join(f"{k} {v}" for k, v in d.items() if k != "case"))


main()
