#!/usr/bin/env bash
# Roll Vantus out to Kubernetes in the safe order, check it, and roll back if it is unhealthy.
# Used by .github/workflows/deploy.yml and by operators by hand (docs/operations/deploy-kubernetes.md).
#
#   deploy/k8s/deploy.sh apply    --overlay staging --image ghcr.io/ORG/vantus@sha256:... [--state FILE]
#   deploy/k8s/deploy.sh smoke    --overlay staging --url https://staging.vantus.example.com
#   deploy/k8s/deploy.sh rollback --overlay staging [--state FILE]
#
# apply:
#   1. renders the overlay with the requested image (a throw-away kustomization next to it);
#   2. records the Deployment's current revision in --state (for an exact rollback);
#   3. deletes the previous migration Job (Job templates are immutable), applies only the
#      objects labelled app.vantus/phase=pre-deploy (ConfigMap, ServiceAccount, egress policy,
#      migration Job) and waits for the Job: the new schema is in place before any new pod;
#   4. applies everything and waits for `kubectl rollout status`.
#   A migration failure stops here with the old pods untouched.
# smoke: `vantus doctor --json` inside a running pod, then /readyz on the public URL (bounded polling).
# rollback: `kubectl rollout undo` to the revision recorded by apply (never further back), then waits.
set -Eeuo pipefail
trap 'echo "deploy.sh: step \"${step:-setup}\" failed (line $LINENO: $BASH_COMMAND)" >&2' ERR

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cmd=${1:-}
[ $# -gt 0 ] && shift
overlay=""
image=""
url=""
state="${RUNNER_TEMP:-/tmp}/vantus-deploy-state"
timeout=${DEPLOY_TIMEOUT:-600}
ready_attempts=${READY_ATTEMPTS:-60}
kubectl=${KUBECTL:-kubectl}

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --overlay) overlay=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --url) url=${2%/}; shift 2 ;;
    --state) state=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 64 ;;
  esac
done
case "$cmd" in apply|smoke|rollback) ;; -h|--help|help) usage; exit 0 ;; *) usage >&2; exit 64 ;; esac
[ -n "$overlay" ] || { echo "--overlay is required (staging, production, cnpg)" >&2; exit 64; }
overlay_dir="$here/overlays/$overlay"
[ -f "$overlay_dir/kustomization.yaml" ] || { echo "no such overlay: $overlay_dir" >&2; exit 64; }
namespace=$("$kubectl" kustomize "$overlay_dir" | sed -n 's/^  namespace: //p' | head -n 1)
[ -n "$namespace" ] || { echo "could not read the namespace from $overlay" >&2; exit 1; }
k() { "$kubectl" --namespace "$namespace" "$@"; }

revision() { k get deployment vantus -o jsonpath='{.metadata.annotations.deployment\.kubernetes\.io/revision}' 2>/dev/null || true; }

wait_for_job() {
  local job=$1 deadline=$((SECONDS + timeout)) succeeded failed
  while [ "$SECONDS" -lt "$deadline" ]; do
    succeeded=$(k get job "$job" -o jsonpath='{.status.succeeded}' 2>/dev/null || true)
    failed=$(k get job "$job" -o jsonpath='{.status.conditions[?(@.type=="Failed")].status}' 2>/dev/null || true)
    if [ "${succeeded:-0}" -ge 1 ]; then echo "job/$job completed"; return 0; fi
    if [ "$failed" = True ]; then
      echo "job/$job FAILED; its logs:" >&2
      k logs "job/$job" --all-containers --tail=200 >&2 || true
      return 1
    fi
    k wait --for=condition=complete "job/$job" --timeout=10s >/dev/null 2>&1 || true
  done
  echo "job/$job did not finish within ${timeout}s" >&2
  k logs "job/$job" --all-containers --tail=200 >&2 || true
  return 1
}

do_apply() {
  [ -n "$image" ] || { echo "--image is required for apply" >&2; exit 64; }
  step="render"
  local work
  work=$(mktemp -d "$here/.release.XXXXXX")
  # shellcheck disable=SC2064 # expand now: the path is fixed
  trap "rm -rf '$work'" EXIT
  local name=${image%@*} ref
  if [[ "$image" == *@sha256:* ]]; then ref="    digest: ${image#*@}"
  else name=${image%:*}; ref="    newTag: ${image##*:}"; fi
  cat >"$work/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../overlays/$overlay
images:
  - name: ghcr.io/vantus-systems/vantus
    newName: $name
$ref
EOF
  "$kubectl" kustomize "$work" >"$work/rendered.yaml"
  echo "rendered $(grep -c '^kind:' "$work/rendered.yaml") objects for $overlay ($namespace) with $image"

  step="record current revision"
  revision >"$state"
  echo "current revision: $(cat "$state" || true) (saved to $state)"

  step="migrate"
  k delete job vantus-migrate --ignore-not-found --wait=true
  k apply -f "$work/rendered.yaml" --selector app.vantus/phase=pre-deploy
  wait_for_job vantus-migrate

  step="rollout"
  k apply -f "$work/rendered.yaml"
  k rollout status deployment/vantus --timeout="${timeout}s"
  echo "rolled out: revision $(revision)"
}

do_smoke() {
  step="doctor"
  echo "--- vantus doctor --json (in a running pod)"
  k exec deployment/vantus -c vantus -- /vantus doctor --json
  echo "--- /readyz"
  if [ -n "$url" ]; then
    local i body
    for i in $(seq 1 "$ready_attempts"); do
      if body=$(curl -fsS --max-time 5 "$url/readyz"); then echo "ready after $i attempt(s): $body"; return 0; fi
      sleep 2
    done
    echo "$url/readyz did not answer 200 after $ready_attempts attempts" >&2
    return 1
  fi
  # No public URL given: check readiness through the Service from inside the cluster.
  k exec deployment/vantus -c vantus -- /vantus healthcheck --url http://vantus/readyz
}

do_rollback() {
  step="rollback"
  local before now
  before=$(cat "$state" 2>/dev/null || true)
  now=$(revision)
  if [ -z "$before" ] || [ "$before" = "$now" ]; then
    echo "no new revision was created (before='$before', now='$now'); nothing to undo"
    return 0
  fi
  echo "rolling back deployment/vantus from revision $now to $before"
  k rollout undo deployment/vantus --to-revision="$before"
  k rollout status deployment/vantus --timeout="${timeout}s"
  echo "NOTE: migrations are not reverted; they are written to be backward compatible (docs/operations/upgrade-and-rollback.md)."
}

"do_$cmd"
