#!/usr/bin/env bash
# The real-node tier: the product as it ships, on a real node of this
# machine (scripts/node: containerd, runc, kubelet, the real scheduler,
# kube-proxy, CoreDNS) against the real control plane. No fake kubelet:
# every Pod below runs in a container.
#
#   1. the images of images/ built without Docker (scripts/image-rootfs
#      build + archive) and imported into the node's containerd
#   2. helm install exactly as the README says, only image names, pull
#      policy and containment set by values
#   3. kubectl apply -f examples/: every Incident Resolved with
#      verified.healthy true, the supervised one after kubectl annotate
#      approve, each with all seven sandbox layers in its status
#   4. the operator's leader Pod deleted while an Incident waits for
#      approval: the next leader finishes it, no step repeated
#   5. an Incident deleted while it waits: no Pod, Job or Secret is left
#   6. the sandbox report from real Pods under the chart's defaults and
#      under RuntimeDefault seccomp with hostUsers: false
#   7. stop: the node and the control plane leave nothing behind
#
# Needs root, scripts/node install, scripts/control-plane install and
# scripts/chart-tools install (./scripts/test runs them). About 3 minutes
# warm. KEEP=1 leaves the cluster running at the end (the script prints how
# to reach and stop it).
set -euo pipefail
cd "$(dirname "$0")/.."

NAMESPACE=default
RELEASE=remediator
SYSTEM=remediator-system
TAG=dev
IMAGE=localhost/remediator
TARGET_IMAGE=localhost/remediator-target-service
TIMEOUT_S="${TIMEOUT_S:-300}"

die() { echo "e2e/node.sh: FAILED: $*" >&2; exit 1; }
step() { echo "== $* ($(elapsed) s)"; }
started=$SECONDS
elapsed() { echo $((SECONDS - started)); }

[ "$(id -u)" = 0 ] || die "needs root (the node runs containers)"
scripts/node installed || die "the node is not built: scripts/node install"
scripts/control-plane installed || die "the control plane is not built: scripts/control-plane install"
scripts/chart-tools installed || die "helm is not installed: scripts/chart-tools install"
eval "$(scripts/chart-tools env)"

work="$(mktemp -d "${TMPDIR:-/tmp}/remediator-node-tier.XXXXXX")"
# mktemp's 0700 would shut out the unprivileged ids of hostUsers: false Pods.
chmod 0755 "$work"
# The node and control plane stop when this script ends however it ends:
# their watchdogs read this fifo, whose only writer is fd 7 of this shell.
mkfifo "$work/alive"
exec 7<>"$work/alive"

finish() {
  local status=$?
  if [ "$status" -ne 0 ] && [ -n "${KUBECTL:-}" ]; then
    echo "--- state at failure" >&2
    kubectl get incidents,pods,jobs -A -o wide >&2 || true
    kubectl -n "$SYSTEM" logs -l app.kubernetes.io/component=operator --tail=30 --prefix >&2 || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then
    echo "kept: eval \"\$(scripts/node env $work/node)\"; scripts/node stop $work/node; scripts/control-plane stop $work/cp"
    return
  fi
  scripts/node stop "$work/node" 2>&1 | grep -v DEPRECATION || true
  scripts/control-plane stop "$work/cp" || true
  rm -rf "$work"
}
trap finish EXIT

kubectl() { command "$KUBECTL" "$@"; }

# ---------------------------------------------------------------- helpers

# The value of a jsonpath on an Incident, or empty.
field() { kubectl get incident -n "$NAMESPACE" "$1" -o "jsonpath=$2" 2>/dev/null || true; }

# Waits until every named Incident is Resolved, approving each action that
# waits; fails on Failed or after TIMEOUT_S.
await_resolved() {
  local deadline=$((SECONDS + TIMEOUT_S)) name phase pending
  while :; do
    pending=0
    for name in "$@"; do
      phase="$(field "$name" '{.status.phase}')"
      case "$phase" in
        Resolved) ;;
        Failed)
          kubectl get incident -n "$NAMESPACE" "$name" -o yaml >&2
          die "$name failed (its status above says why)" ;;
        AwaitingApproval)
          approve "$name"
          pending=$((pending + 1)) ;;
        *) pending=$((pending + 1)) ;;
      esac
    done
    [ "$pending" -eq 0 ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || die "not Resolved within ${TIMEOUT_S}s: $*"
    sleep 1
  done
}

declare -A approved=()
approve() {
  local step; step="$(field "$1" '{.status.pendingApproval.step}')"
  [ -n "$step" ] || return 0
  # Once per step: the annotation stays until a leader answers it.
  [ "${approved[$1]:-}" = "$step" ] && return 0
  approved[$1]="$step"
  echo "   approving step $step of $1"
  kubectl annotate -n "$NAMESPACE" --overwrite incident "$1" "remediator.dev/approve=$step" >/dev/null
}

await_phase() {
  local name="$1" want="$2" deadline=$((SECONDS + TIMEOUT_S))
  until [ "$(field "$name" '{.status.phase}')" = "$want" ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "$name did not reach $want within ${TIMEOUT_S}s (phase $(field "$name" '{.status.phase}'))"
    sleep 0.5
  done
}

# An Incident of `scenario` named `name` under Policy `policy`.
incident() {
  kubectl apply -n "$NAMESPACE" -f - >/dev/null <<EOF
apiVersion: remediator.dev/v1alpha1
kind: Incident
metadata:
  name: $1
spec:
  scenario: $2
  policyRef:
    name: $3
EOF
}

# The verdict and the sandbox report of a Resolved Incident, checked.
check_resolved() {
  local name="$1" layers="$2"
  [ "$(field "$name" '{.status.verified.healthy}')" = true ] || die "$name: verified.healthy is not true"
  local sandbox; sandbox="$(field "$name" '{.status.sandbox}')"
  [ "$sandbox" = "$layers" ] || die "$name: sandbox layers '$sandbox', expected '$layers'"
}

ALL_LAYERS="landlock-fs, landlock-net, landlock-scope, userns, pidns, netns, mntns"

# helm install (first) or upgrade with these containment values, then the
# rollout finished and a leader Ready.
helm_containment() {
  local verb="$1" seccomp="$2" host_users="$3" proc_mount="$4"
  "$HELM" "$verb" "$RELEASE" charts/remediator --kubeconfig "$KUBECONFIG" \
    --namespace "$SYSTEM" --create-namespace \
    --set image.repository="$IMAGE" --set image.tag="$TAG" --set image.pullPolicy=Never \
    --set targetImage.repository="$TARGET_IMAGE" --set targetImage.tag="$TAG" --set targetImage.pullPolicy=Never \
    --set sandbox.seccompProfile.type="$seccomp" \
    --set sandbox.hostUsers="$host_users" --set sandbox.procMount="$proc_mount" \
    --set-json "incidentNamespaces=[\"$NAMESPACE\"]" \
    --wait --timeout 3m >/dev/null
  # Only the leader is ever Ready, so a rollout never "completes": wait for
  # a leader started with these values instead.
  await_leader "--host-users=$host_users" "--proc-mount=$proc_mount" "--seccomp-profile=$seccomp"
}

leader() {
  kubectl -n "$SYSTEM" get lease "$RELEASE"-operator -o 'jsonpath={.spec.holderIdentity}' 2>/dev/null || true
}

# A leader that is one of the current Pods, Ready, and started with every
# argument given (prefixes of its operator arguments).
await_leader() {
  local deadline=$((SECONDS + 120)) holder ready args want ok
  while :; do
    holder="$(leader)" ok=0
    if [ -n "$holder" ]; then
      ready="$(kubectl -n "$SYSTEM" get pod "$holder" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" || ready=""
      args="$(kubectl -n "$SYSTEM" get pod "$holder" -o 'jsonpath={range .spec.containers[0].args[*]}{@}{"\n"}{end}' 2>/dev/null)" || args=""
      if [ "$ready" = True ]; then
        ok=1
        for want in "$@"; do grep -q -- "^$want" <<<"$args" || ok=0; done
      fi
    fi
    [ "$ok" = 1 ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || die "no Ready leader started with $* within 120 s (lease holder '$holder')"
    sleep 0.5
  done
}

# Objects that belong to an Incident, by the operator's label.
owned_objects() {
  kubectl get pods,jobs,secrets -n "$NAMESPACE" -l "remediator.dev/incident=$1" -o name 2>/dev/null || true
}

# ---------------------------------------------------------------- 1. images

step "1. images: release binaries, Debian rootfs, OCI archives"
cargo build --release --locked -q -p remediator --bin remediator -p target-service --bin target-service
scripts/image-rootfs build remediator --binary target/release/remediator >/dev/null
scripts/image-rootfs build target-service --binary target/release/target-service >/dev/null
scripts/image-rootfs archive remediator --tag "$IMAGE:$TAG" --out "$work/remediator.tar"
scripts/image-rootfs archive target-service --tag "$TARGET_IMAGE:$TAG" --out "$work/target-service.tar"

step "   control plane and node"
address="$(scripts/node address)"
tie=(--while-stdin-open)
[ "${KEEP:-0}" = 1 ] && tie=()
scripts/control-plane start "$work/cp" --node-address "$address" "${tie[@]}" <"$work/alive" 7>&-
scripts/node start "$work/node" --control-plane "$work/cp" "${tie[@]}" <"$work/alive" 7>&- 2>&1 |
  grep -v DEPRECATION
eval "$(scripts/node env "$work/node")"
export KUBECONFIG
scripts/node load "$work/node" "$work/remediator.tar" "$work/target-service.tar" 2>&1 | grep -c saved >/dev/null

# ---------------------------------------------------------------- 2-3. chart, examples

step "2. helm install (Localhost seccomp profile, hostUsers: false, procMount: Unmasked)"
kubectl apply -f crds/ >/dev/null
helm_containment install Localhost false Unmasked
kubectl -n "$SYSTEM" get pods -o wide

step "3. kubectl apply -f examples/"
kubectl apply -n "$NAMESPACE" -f examples/ >/dev/null
mapfile -t examples < <(kubectl get incidents -n "$NAMESPACE" -o 'jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}')
[ "${#examples[@]}" -ge 10 ] || die "examples/ created only ${#examples[@]} Incidents"
await_resolved "${examples[@]}"
for name in "${examples[@]}"; do check_resolved "$name" "$ALL_LAYERS"; done
kubectl get incidents -n "$NAMESPACE"
echo "   ${#examples[@]} examples Resolved and verified healthy in real Pods, all seven layers each"

# ---------------------------------------------------------------- 4. leader killed

step "4. the leader Pod deleted while an Incident waits for approval"
incident leader-loss stale_pidfile supervised
await_phase leader-loss AwaitingApproval
before="$(leader)"
steps_before="$(field leader-loss '{.status.steps}')"
kubectl -n "$SYSTEM" delete pod "$before" --wait=false >/dev/null
deadline=$((SECONDS + 120))
until [ -n "$(leader)" ] && [ "$(leader)" != "$before" ]; do
  [ "$SECONDS" -lt "$deadline" ] || die "no new leader within 120 s of deleting $before"
  sleep 0.5
done
await_leader
echo "   $before deleted at step $steps_before; $(leader) leads"
await_resolved leader-loss
check_resolved leader-loss "$ALL_LAYERS"
steps="$(field leader-loss '{range .status.actions[*]}{.step}{" "}{end}')"
[ "$(tr ' ' '\n' <<<"$steps" | sed '/^$/d' | sort -n | uniq -d)" = "" ] || die "a step was repeated: $steps"
[ "$(tr ' ' '\n' <<<"$steps" | sed '/^$/d' | sort -n | tr '\n' ' ')" = "$steps" ] || die "steps out of order: $steps"
echo "   Resolved under the new leader; steps $steps(none repeated)"

# ---------------------------------------------------------------- 5. deleted mid-run

step "5. an Incident deleted while it waits"
incident deleted-midway stale_pidfile supervised
await_phase deleted-midway AwaitingApproval
[ -n "$(owned_objects deleted-midway)" ] || die "deleted-midway owns no Pod, Job or Secret while it runs"
echo "   owns: $(owned_objects deleted-midway | tr '\n' ' ')"
kubectl delete incident -n "$NAMESPACE" deleted-midway --wait=true --timeout=60s >/dev/null
deadline=$((SECONDS + 60))
while [ -n "$(owned_objects deleted-midway)" ]; do
  [ "$SECONDS" -lt "$deadline" ] || die "left behind after deletion: $(owned_objects deleted-midway | tr '\n' ' ')"
  sleep 0.5
done
echo "   nothing left"

# ---------------------------------------------------------------- 6. other containment settings

sandbox_under() {
  local label="$1" name="$2"
  incident "$name" stale_lockfile optimized
  local deadline=$((SECONDS + TIMEOUT_S)) phase
  while :; do
    phase="$(field "$name" '{.status.phase}')"
    case "$phase" in Resolved | Failed) break ;; esac
    [ "$SECONDS" -lt "$deadline" ] || die "$name neither Resolved nor Failed within ${TIMEOUT_S}s"
    sleep 0.5
  done
  echo "   $label: $name $phase; sandbox: $(field "$name" '{.status.sandbox}')"
  local actions; actions="$(field "$name" '{range .status.actions[*]}{.step}:{.risk}:{.decision} {end}')"
  echo "     actions (step:risk:decision): $actions"
  # Weak containment caps the gate at LOW: nothing riskier ran.
  if grep -qE ':(MEDIUM|HIGH|CRITICAL):(Allowed|Confirmed)' <<<"$actions"; then
    die "$name: an action above LOW ran under weak containment: $actions"
  fi
}

step "6. the chart's defaults (RuntimeDefault seccomp, host users, masked /proc)"
helm_containment upgrade RuntimeDefault true Default
sandbox_under "defaults" under-defaults
sandbox="$(field under-defaults '{.status.sandbox}')"
[ "$sandbox" != "$ALL_LAYERS" ] || die "the chart's defaults reported every layer; RuntimeDefault should refuse user namespaces"
grep -q "no-userns" <<<"$sandbox" || die "under the chart's defaults the sandbox report does not say user namespaces were refused: $sandbox"

step "   RuntimeDefault seccomp with hostUsers: false and procMount: Unmasked"
helm_containment upgrade RuntimeDefault false Unmasked
sandbox_under "RuntimeDefault" under-runtime-default
sandbox="$(field under-runtime-default '{.status.sandbox}')"
grep -q "no-userns" <<<"$sandbox" || die "under RuntimeDefault the sandbox report does not say user namespaces were refused: $sandbox"

step "7. done in $(elapsed) s; stopping the node and the control plane"
