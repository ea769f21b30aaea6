# k8s-aggregator-mcp: build, test, package, deploy.  `just --list` shows the recipes.
#
# Settings: pass them before the recipe, or as environment variables:
#   just IMAGE_REPO=quay.io/me TAG=v0.1.0 image push deploy
#   IMAGE_REPO=quay.io/me TAG=v0.1.0 just deploy
#   just OVERLAY=openshift NAMESPACE=mcp deploy
# `deploy` edits no file of the repository: it writes a small kustomization
# (the chosen overlay + these images + this namespace) under the git-ignored
# .interop/render/ and applies that.

set shell := ["bash", "-euo", "pipefail", "-c"]

# The repository the deploy/ manifests name by default (deploy/base/*/kustomization.yaml).
DEFAULT_IMAGE_REPO := "ghcr.io/example"

# Registry and path the images are built as and pushed to.
IMAGE_REPO := env("IMAGE_REPO", DEFAULT_IMAGE_REPO)

# Image tag.
TAG := env("TAG", "latest")

# Namespace to deploy to (the gateway watches the backend Service in its own namespace).
NAMESPACE := env("NAMESPACE", "mcp-server")

# deploy/overlays/<OVERLAY>: kubernetes, openshift, dev (kind/minikube), gateway-only.
OVERLAY := env("OVERLAY", "kubernetes")

# podman when installed, else docker.
CONTAINER_TOOL := env("CONTAINER_TOOL", `command -v podman >/dev/null 2>&1 && echo podman || echo docker`)

# Extra flags for `image` builds, e.g. BUILD_FLAGS=--isolation=chroot in a container sandbox.
BUILD_FLAGS := env("BUILD_FLAGS", "")

# The Secret holding the keys that seal legacy session ids (components/replicas); `deploy` creates it with a random key when missing.
SESSION_KEYS_SECRET := "k8s-aggregator-mcp-session-keys"

# kubectl (its built-in kustomize renders deploy/).
KUBECTL := env("KUBECTL", "kubectl")

# kind cluster that `kind-load` loads the images into.
KIND_CLUSTER := env("KIND_CLUSTER", "kind")

FRONTEND_IMAGE := IMAGE_REPO + "/k8s-aggregator-mcp:" + TAG
BACKEND_IMAGE := IMAGE_REPO + "/node-mcp-server:" + TAG
VERSION := `sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1`
REVISION := `git rev-parse --short HEAD 2>/dev/null || echo unknown`
render_dir := ".interop/render/" + OVERLAY

# Show the recipes.
default:
    @{{just_executable()}} --list --unsorted

# Build both binaries (release): the same cargo command as the Containerfile's builder stage.
build:
    cargo build --release --locked --workspace --bin k8s-aggregator-mcp --bin node-mcp-server

# Run the whole test suite (tests/run-all, the command CI runs).
test:
    tests/run-all

# Install just, kubectl and kubernetes-validate into .interop/ (needed by the deploy tests).
tools:
    .ci/install-deploy-tools

# Run the gateway with three in-process example backends on 127.0.0.2-4 (no cluster needed).
demo:
    cargo run --release --bin k8s-aggregator-mcp -- demo

# Start the demo, run the smoke test against it, stop the demo.
demo-smoke:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release --bin k8s-aggregator-mcp
    mkdir -p .interop
    target/release/k8s-aggregator-mcp demo > .interop/demo.log 2>&1 &
    demo=$!
    trap 'kill $demo 2>/dev/null; wait $demo 2>/dev/null || true' EXIT
    for _ in $(seq 1 100); do
      curl -fsS -o /dev/null http://127.0.0.1:9029/healthz 2>/dev/null && break
      kill -0 $demo 2>/dev/null || { cat .interop/demo.log; exit 1; }
      sleep 0.2
    done
    scripts/smoke.sh http://127.0.0.1:9029/mcp

# Smoke-test a running gateway: initialize, tools/list, tools/call node_info on a node (`--node NAME` to choose).
smoke URL="http://127.0.0.1:9029/mcp" *ARGS:
    scripts/smoke.sh {{URL}} {{ARGS}}

# Measure tools/call throughput and latency: direct, through nginx (if installed: apt-get install nginx-light), through a bare hyper proxy and through the gateway ([SECONDS] [CONCURRENCY]).
bench *ARGS:
    cargo build --release --workspace --bins --examples
    target/release/examples/bench {{ARGS}}

# Instructions per relayed tools/call in the gateway, counted by callgrind (needs valgrind): `just instructions legacy 1000`.
instructions ERA="modern" CALLS="1000":
    cargo build --profile profiling --workspace --bins
    scripts/instructions-per-call.sh {{ERA}} {{CALLS}}

# Build both images, IMAGE_REPO/k8s-aggregator-mcp:TAG and IMAGE_REPO/node-mcp-server:TAG (Containerfile targets).
image:
    {{CONTAINER_TOOL}} build {{BUILD_FLAGS}} -f Containerfile --target frontend --build-arg VERSION={{VERSION}} --build-arg REVISION={{REVISION}} -t {{FRONTEND_IMAGE}} .
    {{CONTAINER_TOOL}} build {{BUILD_FLAGS}} -f Containerfile --target backend --build-arg VERSION={{VERSION}} --build-arg REVISION={{REVISION}} -t {{BACKEND_IMAGE}} .

# Push both images to IMAGE_REPO.
push:
    {{CONTAINER_TOOL}} push {{FRONTEND_IMAGE}}
    {{CONTAINER_TOOL}} push {{BACKEND_IMAGE}}

# Load both images into a kind cluster (for OVERLAY=dev), without a registry.
kind-load:
    {{ if CONTAINER_TOOL == "docker" { "kind load docker-image --name " + KIND_CLUSTER + " " + FRONTEND_IMAGE + " " + BACKEND_IMAGE } else { CONTAINER_TOOL + " save -m -o .interop/images.tar " + FRONTEND_IMAGE + " " + BACKEND_IMAGE + " && kind load image-archive --name " + KIND_CLUSTER + " .interop/images.tar" } }}

# Write the kustomization that deploy, undeploy and manifests apply (under .interop/render/).
_kustomization:
    mkdir -p {{render_dir}}
    printf '%s\n' '# Generated by just: deploy/overlays/{{OVERLAY}} with the images and namespace of this run.' 'apiVersion: kustomize.config.k8s.io/v1beta1' 'kind: Kustomization' 'namespace: {{NAMESPACE}}' 'resources:' '  - ../../../deploy/overlays/{{OVERLAY}}' 'images:' '  - name: {{DEFAULT_IMAGE_REPO}}/k8s-aggregator-mcp' '    newName: {{IMAGE_REPO}}/k8s-aggregator-mcp' '    newTag: "{{TAG}}"' '  - name: {{DEFAULT_IMAGE_REPO}}/node-mcp-server' '    newName: {{IMAGE_REPO}}/node-mcp-server' '    newTag: "{{TAG}}"' > {{render_dir}}/kustomization.yaml

# Print the manifests that `deploy` would apply.
manifests: _kustomization
    {{KUBECTL}} kustomize {{render_dir}}

# Deploy to the current kubectl context and wait for the rollout; settings (OVERLAY, NAMESPACE, IMAGE_REPO, TAG) before or after the recipe name: `just deploy IMAGE_REPO=quay.io/you TAG=v1`.
deploy *SETTINGS: _kustomization
    {{ if SETTINGS != "" { "true" } else { KUBECTL + " get namespace " + NAMESPACE + " >/dev/null 2>&1 || " + KUBECTL + " create namespace " + NAMESPACE } }}
    {{ if SETTINGS != "" { "true" } else { KUBECTL + " -n " + NAMESPACE + " get secret " + SESSION_KEYS_SECRET + " >/dev/null 2>&1 || head -c 32 /dev/urandom | base64 | " + KUBECTL + " -n " + NAMESPACE + " create secret generic " + SESSION_KEYS_SECRET + " --from-file=keys=/dev/stdin" } }}
    {{ if SETTINGS != "" { just_executable() + " --justfile " + quote(justfile()) + " " + SETTINGS + " deploy" } else { KUBECTL + " apply -k " + render_dir } }}
    {{ if SETTINGS != "" { "true" } else if OVERLAY == "gateway-only" { "true" } else { KUBECTL + " -n " + NAMESPACE + " rollout status daemonset/node-mcp-server --timeout=300s" } }}
    {{ if SETTINGS != "" { "true" } else { KUBECTL + " -n " + NAMESPACE + " rollout status deployment/k8s-aggregator-mcp --timeout=300s" } }}

# Rotate the session key in two steps: the new key first only opens (until every replica has read it, WAIT seconds), then seals; the previous key keeps opening the ids sealed before.
rotate-session-keys WAIT="120":
    #!/usr/bin/env bash
    set -euo pipefail
    current=$({{KUBECTL}} -n {{NAMESPACE}} get secret {{SESSION_KEYS_SECRET}} -o jsonpath='{.data.keys}' | base64 -d | grep -v -e '^#' -e '^[[:space:]]*$' | head -n 1)
    new=$(head -c 32 /dev/urandom | base64)
    put() { printf '%s\n' "$@" | {{KUBECTL}} -n {{NAMESPACE}} create secret generic {{SESSION_KEYS_SECRET}} --from-file=keys=/dev/stdin --dry-run=client -o yaml | {{KUBECTL}} -n {{NAMESPACE}} apply -f - >/dev/null; }
    put "$current" "$new"
    echo "rotate-session-keys: new key added (opens only); waiting {{WAIT}} s for every replica to read it"
    sleep {{WAIT}}
    put "$new" "$current"
    echo "rotate-session-keys: the new key seals; the previous one opens older ids until the next rotation"

# Remove everything `deploy` created (with the base overlays, the namespace too).
undeploy: _kustomization
    {{KUBECTL}} delete -k {{render_dir}} --ignore-not-found --wait=true

# Forward the gateway to http://127.0.0.1:9029/mcp (then: just smoke).
port-forward:
    {{KUBECTL}} -n {{NAMESPACE}} port-forward service/k8s-aggregator-mcp 9029:9029

# Print the gateway's external URL on OpenShift (OVERLAY=openshift).
route-url:
    @echo "https://$({{KUBECTL}} -n {{NAMESPACE}} get route k8s-aggregator-mcp -o jsonpath='{.spec.host}')/mcp"

# Follow the logs: `just logs` (gateway) or `just logs backend` (every node's server).
logs COMPONENT="gateway" *ARGS:
    {{KUBECTL}} -n {{NAMESPACE}} logs -l app.kubernetes.io/component={{COMPONENT}},app.kubernetes.io/part-of=k8s-aggregator-mcp --prefix --tail=100 --max-log-requests=50 -f {{ARGS}}
