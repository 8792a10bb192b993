#!/usr/bin/env bash
# remediator on a real kind cluster, the way a user runs it (the steps of
# docs/kubernetes.md, in order):
#
#   1. create a kind cluster whose node has the chart's seccomp profile
#   2. build the two images and load them into the node
#   3. helm install the chart
#   4. kubectl apply -f examples/
#   5. wait for every Incident to be Resolved, approving the one whose
#      Policy asks for a person (kubectl annotate ... approve=<step>)
#   6. print kubectl get incidents,policies
#   7. delete the cluster (KEEP_CLUSTER=1 keeps it)
#
# Needs kind, docker (with a running daemon), kubectl and helm; helm and
# kubectl fall back to scripts/chart-tools' cached copies. Without kind or
# docker it says so and exits 0 (nothing to test here).
#
#   e2e/kind.sh                 # about 10 minutes cold (image builds)
#   TIMEOUT_S=1200 e2e/kind.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${KIND_CLUSTER:-remediator}"
NAMESPACE=default
TAG=dev
TIMEOUT_S="${TIMEOUT_S:-900}"

skip() { echo "e2e/kind.sh: skipped: $*" >&2; exit 0; }
die() { echo "e2e/kind.sh: $*" >&2; exit 1; }
step() { echo "== $*"; }

command -v kind >/dev/null || skip "kind is not installed (https://kind.sigs.k8s.io)"
command -v docker >/dev/null || skip "docker is not installed"
docker info >/dev/null 2>&1 || skip "docker has no running daemon (docker info fails)"
if ! command -v helm >/dev/null || ! command -v kubectl >/dev/null; then
  scripts/chart-tools installed || die "helm/kubectl missing: install them or run scripts/chart-tools install"
  eval "$(scripts/chart-tools env)"
  HELM_BIN="$HELM"; KUBECTL_BIN="$KUBECTL_CLIENT"
fi
HELM_BIN="${HELM_BIN:-helm}"
KUBECTL_BIN="${KUBECTL_BIN:-kubectl}"
# `command`: the names below are these functions themselves.
helm() { command "$HELM_BIN" "$@"; }
kubectl() { command "$KUBECTL_BIN" --context "kind-$CLUSTER" "$@"; }
# field, await_resolved, approve.
# shellcheck source=e2e/incidents.sh
source e2e/incidents.sh

cleanup() {
  if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
    echo "kept: kind delete cluster --name $CLUSTER"
  else
    step "7. delete the cluster"
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
}

step "1. kind cluster $CLUSTER (the seccomp profile mounted where the kubelet looks)"
config="$(mktemp)"
cat >"$config" <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraMounts:
      - hostPath: $PWD/charts/remediator/files/seccomp
        containerPath: /var/lib/kubelet/seccomp/remediator
        readOnly: true
EOF
trap 'rm -f "$config"; cleanup' EXIT
kind create cluster --name "$CLUSTER" --config "$config" --wait 120s

step "2. build and load the images"
docker build -f images/remediator.Dockerfile -t "remediator:$TAG" .
docker build -f images/target-service.Dockerfile -t "remediator-target-service:$TAG" .
kind load docker-image --name "$CLUSTER" "remediator:$TAG" "remediator-target-service:$TAG"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^remediator(-target-service)?:$TAG "

step "3. helm install"
# Localhost: the profile that lets the sandbox build its namespaces (step 1
# put it on the node). hostUsers=false with an unmasked /proc: the runtime's
# masked /proc would refuse the sandbox a /proc of its own. Without these
# the sandbox reports weak containment and only LOW actions run.
helm install remediator charts/remediator \
  --namespace remediator-system --create-namespace \
  --set image.tag="$TAG" --set targetImage.tag="$TAG" \
  --set sandbox.seccompProfile.type=Localhost \
  --set sandbox.hostUsers=false --set sandbox.procMount=Unmasked \
  --set-json "incidentNamespaces=[\"$NAMESPACE\"]" \
  --wait --timeout 5m
kubectl -n remediator-system get pods

step "4. kubectl apply -f examples/"
kubectl apply -n "$NAMESPACE" -f examples/

step "5. wait for every Incident to be Resolved"
mapfile -t incidents < <(kubectl get incidents -n "$NAMESPACE" -o 'jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}')
await_resolved "${incidents[@]}"

step "6. kubectl get incidents,policies"
kubectl get incidents,policies -n "$NAMESPACE"
