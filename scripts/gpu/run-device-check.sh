#!/usr/bin/env bash
# Runs the GPU device check (issue 7) from the folder scripts/gpu/build-bundle.mjs prepared:
# build/gpu/{device-check.mjs,dawn.node.xz,node.xz} and .gl/*.deb. Needs no npm and no network.
# Sets up the Vulkan loader (the NVIDIA driver mounted under /usr/local/nvidia, or whatever ICD
# the machine has, e.g. Mesa lavapipe), then prints one JSON line per measurement: agreement of
# unet-ref's loss and gradients with cpu, then training-step times at each size with tfjs's stock
# webgpu conv3d kernels and with sipl's tiled ones. Finishes in < 4 minutes (hard limit 230 s).
#
#   bash scripts/gpu/run-device-check.sh [--sizes 32,64,96] [--steps 5] [--budget-s 170] ...
# Output is also written to $OUT/device-check.jsonl when $OUT is set.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
B=build/gpu
# unpacked binaries go next to the bundle (a /tmp mounted noexec could not run them)
WORK=$(mktemp -d "$ROOT/$B/run.XXXXXX" 2>/dev/null || mktemp -d /tmp/sipl-gpu.XXXXXX)
say() { echo "[run-device-check] $*" >&2; }
for f in "$B/device-check.mjs" "$B/dawn.node.xz"; do
  [ -f "$f" ] || { echo "{\"error\":\"$f missing: run 'node scripts/gpu/build-bundle.mjs' first\"}"; exit 2; }
done

unxz_to() { # file.xz → destination, with python's lzma where xz is missing
  if command -v xz >/dev/null; then xz -dc "$1" >"$2"; else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],"wb"))' "$1" "$2"; fi
}

# 1. Vulkan / GL loader libraries (libvulkan1 alone is not enough: the NVIDIA ICD needs glvnd)
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
if ! { have_lib libvulkan.so.1 && have_lib libGLX.so.0 && have_lib libEGL.so.1 && have_lib libGLdispatch.so.0; } && ls .gl/*.deb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    say "unpacking .gl/*.deb into / (loader libraries missing)"
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  else
    say "unpacking .gl/*.deb into $WORK/gl (not root: LD_LIBRARY_PATH)"
    for f in .gl/*.deb; do dpkg -x "$f" "$WORK/gl"; done
    export LD_LIBRARY_PATH="$WORK/gl/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi
NV=/usr/local/nvidia/share
if [ -f "$NV/vulkan/icd.d/nvidia_icd.json" ]; then
  export VK_DRIVER_FILES="$NV/vulkan/icd.d/nvidia_icd.json" VK_ICD_FILENAMES="$NV/vulkan/icd.d/nvidia_icd.json"
  [ -f "$NV/glvnd/egl_vendor.d/10_nvidia.json" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$NV/glvnd/egl_vendor.d/10_nvidia.json"
  say "NVIDIA Vulkan ICD: $VK_DRIVER_FILES"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2

# 2. Node (the carried binary when there is one) and Dawn
NODE=node
if [ -f "$B/node.xz" ]; then
  unxz_to "$B/node.xz" "$WORK/node" && chmod +x "$WORK/node" && NODE="$WORK/node"
fi
command -v "$NODE" >/dev/null || { echo '{"error":"no node binary (build/gpu/node.xz missing and node not on PATH)"}'; exit 2; }
unxz_to "$B/dawn.node.xz" "$WORK/dawn.node"
say "node $("$NODE" --version), bundle $B/device-check.mjs"

# 3. The check; stdout is the JSON lines
LOG=/dev/null
[ -n "${OUT:-}" ] && mkdir -p "$OUT" && LOG="$OUT/device-check.jsonl"
timeout -k 5 230 "$NODE" "$B/device-check.mjs" "$@" --dawn "$WORK/dawn.node" --budget-s 170 | tee "$LOG"
rc=${PIPESTATUS[0]}
[ "$rc" = 124 ] && echo '{"error":"device check stopped at its 230 s limit"}'
rm -rf "$WORK"
exit "$rc"
