#!/usr/bin/env bash
# Create or complete an environment file from a template (default: deploy/compose/vantus.env.example).
#
#   deploy/compose/gen-env.sh --domain vantus.example.com --email ops@example.com
#   deploy/compose/gen-env.sh --out /etc/vantus/vantus.env --example deploy/systemd/vantus.env.example
#   deploy/compose/gen-env.sh --plan      # print what would change, write nothing
#   deploy/compose/gen-env.sh --set VANTUS_BACKUP_RUNNER=external   # instead of the template's value
#
# Rules:
# - Every KEY= of the template ends up in the output, in template order.
# - A key that already has a value in the output is NEVER changed (its line stays byte-for-byte);
#   rotating a secret is a deliberate edit (docs/operations/deploy-compose.md#rotating-secrets).
# - --set KEY=VALUE (repeatable) replaces the template's default for a key the output lacks or has
#   empty; keys missing from the template are appended after the template's keys.
# - Empty secrets are filled with `openssl rand -hex 32`: hex has no `$` for Compose to interpolate.
# - DATABASE_URL, DATABASE_REPLICA_URLS and REDIS_URL are derived from the generated passwords.
# - The output is written with mode 0600.
set -Eeuo pipefail
trap 'echo "gen-env: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
example="$here/vantus.env.example"
out="$here/vantus.env"
domain=""
email=""
plan=0
declare -A override=()
override_keys=()

while [ $# -gt 0 ]; do
  case "$1" in
    --domain) domain=$2; shift 2 ;;
    --email) email=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --example) example=$2; shift 2 ;;
    --plan) plan=1; shift ;;
    --set)
      [[ "${2:-}" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || { echo "--set needs KEY=VALUE, got: ${2:-}" >&2; exit 64; }
      k=${2%%=*}
      [ -n "${override[$k]+x}" ] || override_keys+=("$k")
      override[$k]=${2#*=}
      shift 2 ;;
    -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 64 ;;
  esac
done
[ -f "$example" ] || { echo "template not found: $example" >&2; exit 2; }

SECRET_KEYS=" VANTUS_SECRET_KEY VANTUS_MFA_KEY VANTUS_BACKUP_PASSPHRASE VANTUS_METRICS_TOKEN POSTGRES_PASSWORD REPLICATION_PASSWORD REDIS_PASSWORD S3_SECRET_ACCESS_KEY GF_SECURITY_ADMIN_PASSWORD "

rand() {
  if command -v openssl >/dev/null 2>&1; then openssl rand -hex 32; else od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; fi
}

# Current content (the output if it exists); new values are tracked in an associative array.
declare -A value=() present=()
if [ -f "$out" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in \#*|"") continue ;; esac
    k=${line%%=*}
    [ "$k" = "$line" ] && continue
    present[$k]=1
    value[$k]=${line#*=}
  done <"$out"
fi

placeholder() { case "$1" in ""|*example.com*) return 0 ;; *) return 1 ;; esac; }

changes=()
declare -A newval=()
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in \#*|"") continue ;; esac
  key=${line%%=*}
  default=${line#*=}
  cur=${value[$key]:-}
  case "$key" in
    VANTUS_DOMAIN) [ -n "$domain" ] && placeholder "$cur" && cur="" ;;
    VANTUS_PUBLIC_URL) [ -n "$domain" ] && placeholder "$cur" && cur="" ;;
    ACME_EMAIL) [ -n "$email" ] && placeholder "$cur" && cur="" ;;
  esac
  if [ -n "$cur" ]; then value[$key]=$cur; continue; fi
  new=$default
  case "$key" in
    VANTUS_DOMAIN) [ -n "$domain" ] && new=$domain ;;
    VANTUS_PUBLIC_URL) [ -n "$domain" ] && new="https://$domain" ;;
    ACME_EMAIL) [ -n "$email" ] && new=$email ;;
    S3_ACCESS_KEY_ID) [ -z "$new" ] && new="vantus$(rand | cut -c1-14)" ;;
    DATABASE_URL) [ -n "${value[POSTGRES_PASSWORD]:-}" ] && new="postgres://vantus:${value[POSTGRES_PASSWORD]}@postgres:5432/vantus" ;;
    DATABASE_REPLICA_URLS) [ -n "${value[POSTGRES_PASSWORD]:-}" ] && new="postgres://vantus:${value[POSTGRES_PASSWORD]}@postgres-replica:5432/vantus" ;;
    REDIS_URL) [ -n "${value[REDIS_PASSWORD]:-}" ] && new="redis://:${value[REDIS_PASSWORD]}@redis:6379/0" ;;
    *) case "$SECRET_KEYS" in *" $key "*) new=$(rand) ;; esac ;;
  esac
  [ -n "${override[$key]+x}" ] && new=${override[$key]}
  value[$key]=$new
  # Present but empty, and nothing to fill in (an optional setting): leave the line alone.
  if [ -n "${present[$key]:-}" ] && [ -z "$new" ]; then continue; fi
  newval[$key]=$new
  case "$SECRET_KEYS" in *" $key "*) changes+=("$key (generated secret)") ;; *) changes+=("$key") ;; esac
done <"$example"

# --set keys the template does not have: the same rules, appended after the template's keys.
extra_keys=()
for key in "${override_keys[@]}"; do
  grep -q "^$key=" "$example" && continue
  extra_keys+=("$key")
  [ -n "${value[$key]:-}" ] && continue
  new=${override[$key]}
  value[$key]=$new
  if [ -n "${present[$key]:-}" ] && [ -z "$new" ]; then continue; fi
  newval[$key]=$new
  changes+=("$key")
done

if [ "$plan" = 1 ]; then
  if [ ${#changes[@]} -eq 0 ]; then echo "env: $out is complete; nothing to change"; else
    for c in "${changes[@]}"; do echo "env: would set $c in $out"; done
  fi
  exit 0
fi

umask 077
if [ ! -f "$out" ]; then
  printf '# Generated by deploy/compose/gen-env.sh from %s.\n# Values set here are never overwritten by a re-run. Keep this file mode 0600.\n' \
    "$(basename "$example")" >"$out"
fi
chmod 0600 "$out"
for key in "${!newval[@]}"; do
  if [ -n "${present[$key]:-}" ]; then
    # The key is present with an empty or placeholder value: replace that one line only.
    tmp=$(mktemp "$out.XXXXXX")
    awk -v k="$key" -v v="${newval[$key]}" 'index($0, k "=") == 1 && !done { print k "=" v; done = 1; next } { print }' "$out" >"$tmp"
    chmod 0600 "$tmp"
    mv "$tmp" "$out"
  fi
done
# Append missing keys in template order.
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in \#*|"") continue ;; esac
  key=${line%%=*}
  if [ -z "${present[$key]:-}" ] && [ -n "${newval[$key]+x}" ]; then
    printf '%s=%s\n' "$key" "${newval[$key]}" >>"$out"
  fi
done <"$example"
for key in "${extra_keys[@]}"; do
  if [ -z "${present[$key]:-}" ] && [ -n "${newval[$key]+x}" ]; then
    printf '%s=%s\n' "$key" "${newval[$key]}" >>"$out"
  fi
done

for c in "${changes[@]}"; do echo "env: set $c"; done
if grep -v '^#' "$out" | grep -q '\$'; then
  echo "warning: $out contains '\$'; Compose interpolates it. Write a literal dollar as \$\$." >&2
fi
if grep -v '^#' "$out" | grep -q 'example\.com'; then
  echo "note: $out still uses example.com; pass --domain and --email (or edit the file)." >&2
fi
echo "env: wrote $out (mode $(stat -c %a "$out"), ${#changes[@]} change(s))"
