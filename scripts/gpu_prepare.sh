#!/usr/bin/env bash
# On the build machine: packs what scripts/gpu_check.sh needs into .gpu/ (git-ignored) for a GPU
# machine that has PyTorch but no Rust toolchain: the release CLI, bench and test binaries
# (stripped), the Vulkan/GL loader packages with a .gpu/env.sh that installs them there and points
# Vulkan at NVIDIA's driver, and the PyTorch peers and the compare script from scripts/.
# docs/bench.md describes the whole GPU run. Keep .gpu/ under 64 MiB (printed at the end).
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
grep -qsx '/.gpu/' .git/info/exclude || { mkdir -p .git/info; echo '/.gpu/' >> .git/info/exclude; }
mkdir -p .gpu/gl
# The loaders, as Debian packages for amd64 (the GPU machine has the driver but not the loaders).
if ! ls .gpu/gl/libvulkan1_*.deb >/dev/null 2>&1; then
  lists=$(mktemp -d)
  apt=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
  mkdir -p "$lists/partial"
  apt-get "${apt[@]}" update -qq >/dev/null
  (cd .gpu/gl && apt-get "${apt[@]}" download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
cat > .gpu/env.sh <<'ENV'
# Source on the GPU machine, from the checkout: installs the loaders, selects NVIDIA's ICDs.
for f in .gpu/gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
export XDG_RUNTIME_DIR=/tmp
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader || true
ENV
# Every executable cargo reports for the CLI, the benches and the tests (test and bench binaries
# carry a hash suffix, dropped here).
for what in --bins --benches --tests; do
  cargo build --release "$what" --message-format=json-render-diagnostics 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])' |
    while read -r exe; do
      name=$(basename "$exe" | sed -E 's/-[0-9a-f]{16}$//')
      cp "$exe" ".gpu/$name" && { strip ".gpu/$name" 2>/dev/null || true; }
    done
done
cp scripts/torch_peers.py scripts/bench_compare.py .gpu/
echo ".gpu/ holds $(du -sm .gpu | cut -f1) MiB"
