#!/usr/bin/env bash
# On the GPU machine, after `source .gpu/env.sh` (see scripts/gpu_prepare.sh): one pass that leaves
# everything a session needs under $OUT, each step bounded so one slow step cannot eat the lease:
#   info.txt        adapters, features, limits
#   tests.txt       the kernels test suite on the GPU (golden data from this checkout)
#   vc.json         vcortex bench --json --profile (standard shapes, per-kernel profile)
#   bench.txt       its table
#   checks.txt      two GEMM cases again with VCORTEX_SHADER_CHECKS=full (the cost of wgpu's
#                   loop counters and index clamps, which vcortex compiles out by default)
#   torch.jsonl     PyTorch peers (torch_peers.py, then scripts/peers_pose.py)
#   compare.md      bench_compare.py's table of the two
# Set STEPS to a subset (e.g. STEPS="bench torch compare"), FILTER to a bench filter, and
# TORCH_COMPILE=1 to add torch.compile's variants to the peers (a minute or more of compiling).
set -uo pipefail
out=${OUT:-/tmp/vcortex-gpu}
mkdir -p "$out"
steps=${STEPS:-"info tests bench checks torch compare"}
has() { [[ " $steps " == *" $1 "* ]]; }
stamp() { echo "[$(date +%T)] $*" | tee -a "$out/log.txt"; }

if has info; then
  stamp info
  timeout 60 .gpu/vcortex info > "$out/info.txt" 2>&1
fi
if has tests; then
  stamp tests
  # Tests look for golden data under VCORTEX_TEST_DATA; the shader registry check needs the build
  # machine's path, so it is skipped here (it ran there).
  VCORTEX_TEST_DATA="$PWD/kernels-tests/data" timeout 180 .gpu/kernels --test-threads 4 \
    --skip every_wgsl_file_is_registered > "$out/tests.txt" 2>&1
  tail -3 "$out/tests.txt" | tee -a "$out/log.txt"
fi
if has bench; then
  stamp bench
  args=(bench --json "$out/vc.json" --profile)
  [ -n "${FILTER:-}" ] && args+=(--filter "$FILTER")
  timeout 300 .gpu/vcortex "${args[@]}" > "$out/bench.txt" 2>&1
  rc=$?
  stamp "bench rc $rc"
  if [ $rc -ne 0 ] || grep -q '"error"' "$out/vc.json" 2>/dev/null; then
    # A failure (a lost device, a case's error): once more with every wgpu shader check on, to
    # tell a kernel bug that the checks would have caught from anything else.
    stamp "bench again with VCORTEX_SHADER_CHECKS=full"
    VCORTEX_SHADER_CHECKS=full timeout 300 .gpu/vcortex bench --json "$out/vc_full_checks.json" \
      ${FILTER:+--filter "$FILTER"} > "$out/bench_full_checks.txt" 2>&1
    stamp "rc $?"
  fi
fi
if has checks; then
  stamp checks
  for f in conv3x3_64 matmul_4096_fp32; do
    VCORTEX_SHADER_CHECKS=full timeout 60 .gpu/vcortex bench --filter "$f" >> "$out/checks.txt" 2>&1
  done
fi
if has torch; then
  stamp torch
  peer_args=()
  [ -n "${TORCH_COMPILE:-}" ] && peer_args+=(--compile)
  timeout 300 python3 .gpu/torch_peers.py "${peer_args[@]}" > "$out/torch.jsonl" 2> "$out/torch.err"
  timeout 200 python3 scripts/peers_pose.py >> "$out/torch.jsonl" 2>> "$out/torch.err"
  stamp "torch done"
fi
if has compare && [ -s "$out/vc.json" ] && [ -s "$out/torch.jsonl" ]; then
  python3 .gpu/bench_compare.py "$out/vc.json" "$out/torch.jsonl" > "$out/compare.md" 2>&1
  cat "$out/compare.md"
fi
stamp done
