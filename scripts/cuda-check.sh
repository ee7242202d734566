#!/usr/bin/env bash
# Compiles the `cuda` feature on a machine without a GPU or a CUDA toolkit: nvcc, NVVM, the
# CUDA headers and (to link) cuBLAS, cuRAND and the runtime come from NVIDIA's PyPI wheels (the
# -cu12 wheels carry no nvcc); the driver library is replaced at link time by a stub generated
# from cudarc's symbol list, and the real one is found on the GPU machine at run time.
#
#   scripts/cuda-check.sh                  # cargo check --features cuda --all-targets
#   scripts/cuda-check.sh build --release  # target/cuda/release/ivt, to run on a GPU machine
#
# Pin CUDA_VERSION to the newest CUDA the target machine's driver supports (`nvidia-smi`): PTX
# from a newer nvcc does not load on an older driver. Default 13.0 (driver 580).
set -euo pipefail
CUDA_VERSION=${CUDA_VERSION:-13.0}
prefix=${CUDA_PYPI_PREFIX:-/opt/cuda-pypi-$CUDA_VERSION}
cuda="$prefix/nvidia/cu13"
command=${1:-check}
shift || true

fetch() { # wheels... -> unpacked into $prefix
  local tmp
  tmp=$(mktemp -d)
  python3 -m pip download --no-deps -q -d "$tmp" "$@"
  for w in "$tmp"/*.whl; do python3 -m zipfile -e "$w" "$prefix"; done
  rm -rf "$tmp"
}
if [ ! -x "$cuda/bin/nvcc" ]; then
  fetch "nvidia-cuda-nvcc==$CUDA_VERSION.*" "nvidia-nvvm==$CUDA_VERSION.*" \
    "nvidia-cuda-crt==$CUDA_VERSION.*" "nvidia-cuda-runtime==$CUDA_VERSION.*" \
    "nvidia-cuda-cccl==$CUDA_VERSION.*"
  # Wheels do not keep execute bits.
  chmod +x "$cuda"/bin/* "$cuda"/nvvm/bin/*
fi
export CUDA_HOME="$cuda" CUDA_PATH="$cuda" PATH="$cuda/bin:$PATH"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-$(echo "$CUDA_VERSION" | awk -F. '{printf "%d%02d0", $1, $2}')}
export NVCC_PREPEND_FLAGS="-I$cuda/include -I$cuda/cccl/include ${NVCC_PREPEND_FLAGS:-}"

if [ "$command" = build ]; then
  lib="$cuda/lib"
  if [ ! -e "$lib/libcublas.so.13" ]; then
    fetch "nvidia-cublas==13.*" "nvidia-curand==10.*" "nvidia-cuda-nvrtc==$CUDA_VERSION.*"
  fi
  for l in cublas cublasLt curand nvrtc cudart; do
    [ -e "$lib/lib$l.so" ] || ln -sf "$(basename "$(ls "$lib"/lib$l.so.* | head -1)")" "$lib/lib$l.so"
  done
  if [ ! -e "$lib/stubs/libcuda.so" ]; then
    cudarc=$(cargo metadata --format-version 1 --features cuda 2>/dev/null | python3 -c '
import json, sys, os
pkgs = json.load(sys.stdin)["packages"]
print(next(os.path.dirname(p["manifest_path"]) for p in pkgs if p["name"] == "cudarc"))')
    mkdir -p "$lib/stubs"
    grep -ohE '^\s+fn (cu[A-Za-z0-9_]+)\(' "$cudarc/src/driver/sys/mod.rs" \
      | sed -E 's/\s+fn //; s/\(//' | sort -u | awk '{print "void " $1 "(void){}"}' \
      > "$lib/stubs/cuda_stub.c"
    gcc -shared -fPIC -o "$lib/stubs/libcuda.so" -Wl,-soname,libcuda.so.1 "$lib/stubs/cuda_stub.c"
  fi
  CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda} cargo build --features cuda --bin ivt "$@"
else
  cargo "$command" --features cuda --all-targets "$@"
fi
