#!/usr/bin/env bash
# Create or complete deploy/compose/vantus.env from vantus.env.example.
#
#   deploy/compose/gen-env.sh --domain vantus.example.com --email ops@example.com [--out PATH]
#
# - Empty secrets are filled with `openssl rand -hex 32` (hex: nothing for Compose to interpolate).
# - A value that is already set in the output file is NEVER changed: re-running is safe and
#   rotating a secret is a deliberate edit (docs/operations/deploy-compose.md#rotating-secrets).
# - The file is written with mode 0600.
set -Eeuo pipefail
trap 'echo "gen-env: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
example="$here/vantus.env.example"
out="$here/vantus.env"
domain=""
email=""

while [ $# -gt 0 ]; do
  case "$1" in
    --domain) domain=$2; shift 2 ;;
    --email) email=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --example) example=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 64 ;;
  esac
done

rand() {
  if command -v openssl >/dev/null 2>&1; then openssl rand -hex 32; else od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; fi
}

umask 077
[ -f "$out" ] || cp "$example" "$out"
chmod 0600 "$out"

# get KEY -> current value in $out (empty if unset)
get() { sed -n "s/^$1=//p" "$out" | tail -n 1; }
# set_if_empty KEY VALUE -> only when the key is missing or empty
set_if_empty() {
  local key=$1 value=$2
  if [ -n "$(get "$key")" ]; then return 0; fi
  if grep -q "^$key=" "$out"; then
    local tmp
    tmp=$(mktemp "$out.XXXXXX")
    awk -v k="$key" -v v="$value" 'BEGIN{FS=OFS="="} $1==k && !done {print k "=" v; done=1; next} {print}' "$out" >"$tmp"
    chmod 0600 "$tmp"
    mv "$tmp" "$out"
  else
    printf '%s=%s\n' "$key" "$value" >>"$out"
  fi
  echo "set $key"
}

if [ -n "$domain" ]; then
  # Domain and email are not secrets: replace the example placeholders, keep real values.
  for k in VANTUS_DOMAIN VANTUS_PUBLIC_URL; do
    case "$(get "$k")" in *vantus.example.com*|"") sed -i "/^$k=/d" "$out" ;; esac
  done
  set_if_empty VANTUS_DOMAIN "$domain"
  set_if_empty VANTUS_PUBLIC_URL "https://$domain"
fi
if [ -n "$email" ]; then
  case "$(get ACME_EMAIL)" in *example.com|"") sed -i '/^ACME_EMAIL=/d' "$out" ;; esac
  set_if_empty ACME_EMAIL "$email"
fi

for k in VANTUS_SECRET_KEY VANTUS_BACKUP_PASSPHRASE POSTGRES_PASSWORD REPLICATION_PASSWORD \
         REDIS_PASSWORD S3_SECRET_ACCESS_KEY GF_SECURITY_ADMIN_PASSWORD; do
  set_if_empty "$k" "$(rand)"
done
set_if_empty S3_ACCESS_KEY_ID "vantus$(rand | cut -c1-14)"

pg=$(get POSTGRES_PASSWORD)
set_if_empty DATABASE_URL "postgres://vantus:$pg@postgres:5432/vantus"
set_if_empty DATABASE_REPLICA_URLS "postgres://vantus:$pg@postgres-replica:5432/vantus"
set_if_empty REDIS_URL "redis://:$(get REDIS_PASSWORD)@redis:6379/0"

if grep -v '^#' "$out" | grep -q '\$'; then
  echo "warning: $out contains '\$'; Compose interpolates it. Write a literal dollar as \$\$." >&2
fi
if grep -v '^#' "$out" | grep -q 'example\.com'; then
  echo "note: $out still uses example.com; pass --domain and --email (or edit the file)." >&2
fi
echo "wrote $out (mode $(stat -c %a "$out"))"
