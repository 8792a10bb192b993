# Waiting for Incidents, approving what waits: shared by e2e/kind.sh and
# e2e/node.sh. The caller defines NAMESPACE, TIMEOUT_S, die and kubectl.
# shellcheck shell=bash

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
