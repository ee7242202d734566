#!/usr/bin/env bash
# Compile-checks the `cuda` feature on a machine without a GPU or a CUDA toolkit: nvcc, NVVM and
# the CUDA headers come from NVIDIA's PyPI wheels (the -cu12 wheels carry no nvcc).
# Usage: scripts/cuda-check.sh [cargo subcommand, default: check]
set -euo pipefail
prefix=${CUDA_PYPI_PREFIX:-/opt/cudapy}
if [ ! -x "$prefix/nvidia/cu13/bin/nvcc" ]; then
  tmp=$(mktemp -d)
  python3 -m pip download --no-deps -q -d "$tmp" "nvidia-cuda-nvcc>=13,<14" "nvidia-nvvm>=13,<14" \
    "nvidia-cuda-crt>=13,<14" "nvidia-cuda-runtime>=13,<14" "nvidia-cuda-cccl>=13,<14"
  for w in "$tmp"/*.whl; do python3 -m zipfile -e "$w" "$prefix"; done
  # Wheels do not keep execute bits.
  chmod +x "$prefix"/nvidia/cu13/bin/* "$prefix"/nvidia/cu13/nvvm/bin/*
fi
cuda="$prefix/nvidia/cu13"
export CUDA_HOME="$cuda" CUDA_PATH="$cuda" PATH="$cuda/bin:$PATH"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13040}
export NVCC_PREPEND_FLAGS="-I$cuda/include -I$cuda/cccl/include ${NVCC_PREPEND_FLAGS:-}"
cargo "${1:-check}" --features cuda --all-targets
