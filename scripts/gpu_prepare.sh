#!/usr/bin/env bash
# Here (the build machine): packs what scripts/gpu_check.sh needs into .gpu/ (git-ignored): the
# release CLI, benches and test binaries with the Vulkan loaders, the
# PyTorch peers and compare.py. It needs the team's shared folder next to the checkout
# (../shared: its gpu/prepare does the packing, its bench/ holds the peer and compare scripts);
# docs/bench.md describes the whole GPU run. Then, with the device tool:
#   run  carry [".gpu"]  command "source .gpu/env.sh; bash scripts/gpu_check.sh"  timeout_s 540
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
../shared/gpu/prepare --bins --benches --tests
cp ../shared/bench/compare.py .gpu/
echo ".gpu/ holds $(du -sm .gpu | cut -f1) MiB"
