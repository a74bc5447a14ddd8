#!/usr/bin/env bash
# Upgrade a single-server compose install to IMAGE, check it, and roll back if unhealthy.
# Runs ON the server (the deploy workflow pipes it over SSH; operators can run it directly):
#
#   sudo deploy/compose/remote-deploy.sh IMAGE [INSTALL_DIR] [PUBLIC_URL]
#   ssh deploy@host 'sudo bash -s' -- ghcr.io/org/vantus@sha256:... /opt/vantus https://vantus.example.com < deploy/compose/remote-deploy.sh
#
# Order: pull -> migrate (one-shot service, advisory lock) -> replace app containers (compose
# waits for health) -> `vantus doctor --json` -> /readyz through Caddy. Any failure puts the
# previous image back (`up -d --wait` again) and exits 1. Migrations are not reverted: they are
# backward compatible by policy (docs/operations/upgrade-and-rollback.md).
set -Eeuo pipefail
trap 'echo "remote-deploy: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

image=${1:?usage: remote-deploy.sh IMAGE [INSTALL_DIR] [PUBLIC_URL]}
dir=${2:-/opt/vantus}
url=${3:-}
attempts=${READY_ATTEMPTS:-60}
cd "$dir"
[ -f .env ] || { echo "$dir/.env not found: is this a bootstrap-ubuntu22.sh install?" >&2; exit 2; }

previous=$(sed -n 's/^VANTUS_IMAGE=//p' .env)
set_image() {
  local tmp
  tmp=$(mktemp .env.XXXXXX)
  grep -v '^VANTUS_IMAGE=' .env >"$tmp" || true
  printf 'VANTUS_IMAGE=%s\n' "$1" >>"$tmp"
  chmod 644 "$tmp"
  mv "$tmp" .env
}
dc() { docker compose --project-directory "$dir" "$@"; }

rollback() {
  echo "!!! deploy of $image failed; rolling back to ${previous:-<none>}" >&2
  if [ -n "$previous" ]; then
    set_image "$previous"
    dc up -d --wait --wait-timeout 300 vantus || true
  fi
  exit 1
}

echo "deploying $image (previous: ${previous:-<none>}) in $dir"
set_image "$image"
dc pull --quiet vantus migrate || rollback
# `migrate` runs to completion before `vantus` starts (depends_on: service_completed_successfully).
dc up -d --wait --wait-timeout 300 || rollback

echo "--- vantus doctor --json"
dc exec -T vantus /vantus doctor --json || rollback

if [ -n "$url" ]; then
  echo "--- $url/readyz"
  ok=0
  for _ in $(seq 1 "$attempts"); do
    if curl -fsS --max-time 5 "$url/readyz"; then ok=1; echo; break; fi
    sleep 2
  done
  [ "$ok" = 1 ] || rollback
fi
echo "deployed $image"
