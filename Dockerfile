# syntax=docker/dockerfile:1.7
# ivt: text-based person retrieval over gRPC.
#
#   CPU (default):  docker build -t ivt:cpu .
#   CUDA:           docker build -t ivt:cuda --build-arg VARIANT=cuda --build-arg CUDA_COMPUTE_CAP=90 .
#
# With no configuration it serves the shipped demo model (/opt/ivt/models/demo) over the demo
# gallery, generated under /data/cache on first start:   docker run -p 50051:50051 ivt:cpu
# In production mount the model and the index under /data and set IVT_MODEL=/data/model and
# IVT_INDEX=/data/index (the Kubernetes manifests in deploy/ do). gRPC on 50051, metrics on 9000,
# HTTP/JSON API and search page on 8080.

ARG VARIANT=cpu
ARG RUST_VERSION=1.90
ARG CUDA_VERSION=12.6.3

# ---- dependency caching (cargo-chef): dependencies rebuild only when Cargo.toml/lock change ----
FROM rust:${RUST_VERSION}-bookworm AS chef-cpu
RUN cargo install cargo-chef --locked --version 0.1.71
WORKDIR /src

FROM nvidia/cuda:${CUDA_VERSION}-cudnn-devel-ubuntu24.04 AS chef-cuda
ARG RUST_VERSION
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gcc g++ pkg-config \
 && rm -rf /var/lib/apt/lists/* \
 && curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain ${RUST_VERSION} \
 && cargo install cargo-chef --locked --version 0.1.71
WORKDIR /src

FROM chef-cpu AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# The CPU image ships the default build: its AVX-512 kernels (f32, and bf16 with IVT_DTYPE=bf16
# on CPUs with AVX512-BF16) are chosen at run time, so one binary serves AVX2-only and AVX-512
# machines; on the AMD EPYC measured it is faster than the MKL build (README "Speed").
FROM chef-cpu AS builder-cpu
ENV FEATURES=""
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin ivt

FROM chef-cuda AS builder-cuda
ARG CUDA_COMPUTE_CAP=90
ENV CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP}
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --features cuda --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --features cuda --bin ivt

# hadolint ignore=DL3006
FROM builder-${VARIANT} AS builder

# ---- runtime images ----
FROM debian:bookworm-slim AS runtime-cpu
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu24.04 AS runtime-cuda
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility IVT_DEVICE=cuda

# hadolint ignore=DL3006
FROM runtime-${VARIANT}
ARG UID=10001
RUN groupadd --system --gid ${UID} ivt \
 && useradd --system --uid ${UID} --gid ivt --home-dir /data --shell /usr/sbin/nologin ivt \
 && mkdir -p /data/model /data/index /data/cache \
 && chown -R ivt:ivt /data
COPY --from=builder /src/target/release/ivt /usr/local/bin/ivt
COPY models/ /opt/ivt/models/
ENV IVT_CACHE_DIR=/data/cache \
    IVT_ADDR=0.0.0.0:50051 \
    IVT_METRICS_ADDR=0.0.0.0:9000 \
    IVT_HTTP_ADDR=0.0.0.0:8080 \
    RUST_LOG=info
USER ${UID}:${UID}
WORKDIR /data
VOLUME ["/data"]
EXPOSE 50051 9000 8080
ENTRYPOINT ["ivt"]
CMD ["serve"]
