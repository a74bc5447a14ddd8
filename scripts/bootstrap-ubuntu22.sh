#!/usr/bin/env bash
# Provision a fresh Ubuntu 22.04 / 24.04 server for Vantus (single-server path).
#
#   sudo scripts/bootstrap-ubuntu22.sh --domain vantus.example.com --email ops@example.com
#   sudo scripts/bootstrap-ubuntu22.sh --domain ... --email ... --mode native --binary ./vantus
#   sudo scripts/bootstrap-ubuntu22.sh --domain ... --email ... --dry-run    # print the plan only
#   sudo scripts/bootstrap-ubuntu22.sh --domain ... --check                  # verify, change nothing
#
# Idempotent: every step looks at the host first and acts only when something is missing, so a
# second run plans nothing and says so. It never deletes data, packages or existing secrets.
# Guide: docs/operations/deploy-single-server.md
set -Eeuo pipefail
STEP="arguments"
on_error() {
  local rc=$? line=$1 cmd=$2
  [ -n "${LAST_CMD:-}" ] && cmd=$LAST_CMD
  echo "bootstrap: FAILED in step \"$STEP\" (line $line: $cmd, exit $rc)" >&2
  echo "bootstrap: nothing after this step ran; fix the cause and re-run (it is safe to re-run)." >&2
  exit "$rc"
}
trap 'on_error "$LINENO" "$BASH_COMMAND"' ERR

LAST_CMD=""
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---- settings: flags, with environment overrides for every path (tests use a temp dir) -------
MODE=docker
DOMAIN=""
EMAIL=""
APP_USER=vantus
IMAGE="ghcr.io/vantus-systems/vantus:0.1.0"
BINARY=""
BINARY_URL=""
BINARY_SHA256=""
LOKI_URL=""
SSH_PORT=22
BACKUP_CALENDAR="*-*-* 03:00:00 UTC"
READY_ATTEMPTS=90
FIREWALL=1
START=1
DRY_RUN=0
CHECK=0
CONFLICTS=0
BACKUP_CRON=""        # set from BACKUP_CALENDAR by step_preflight
BACKUP_ONCALENDAR=""

ROOT=${VANTUS_ROOT:-}
OS_RELEASE=${VANTUS_OS_RELEASE:-$ROOT/etc/os-release}
SOURCE_DIR=${VANTUS_SOURCE_DIR:-$(cd "$SCRIPT_DIR/.." && pwd)}
INSTALL_DIR=${VANTUS_INSTALL_DIR:-$ROOT/opt/vantus}
ETC_DIR=${VANTUS_ETC_DIR:-$ROOT/etc/vantus}
DATA_DIR=${VANTUS_HOST_DATA_DIR:-$ROOT/var/lib/vantus}
BACKUP_DIR=${VANTUS_BACKUP_DIR:-$ROOT/var/backups/vantus}
BIN_DIR=${VANTUS_BIN_DIR:-$ROOT/usr/local/bin}
SYSTEMD_DIR=${VANTUS_SYSTEMD_DIR:-$ROOT/etc/systemd/system}
APT_DIR=${VANTUS_APT_DIR:-$ROOT/etc/apt}
CADDY_DIR=${VANTUS_CADDY_DIR:-$ROOT/etc/caddy}
VECTOR_DIR=${VANTUS_VECTOR_DIR:-$ROOT/etc/vector}
DEFAULTS_DIR=${VANTUS_DEFAULTS_DIR:-$ROOT/etc/default}

usage() {
  trap - ERR
  sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  cat <<EOF

Options:
  --domain NAME        public host name (required unless --check); TLS via Let's Encrypt
  --email ADDR         ACME account / expiry notices (required unless --check)
  --mode MODE          docker (default: Docker Engine + compose stack) or native (binary + systemd)
  --install-dir DIR    where the compose files live (default $INSTALL_DIR)
  --user NAME          system user owning files and, in native mode, running the service (default $APP_USER)
  --image REF          container image for docker mode (default $IMAGE)
  --binary PATH        native mode: install this static binary
  --binary-url URL     native mode: download the binary from URL (use with --binary-sha256)
  --binary-sha256 HEX  expected checksum of the downloaded binary
  --loki-url URL       ship logs with Vector to this Loki (e.g. https://loki.example.com)
  --ssh-port N         SSH port to keep open in ufw (default $SSH_PORT)
  --backup-at SPEC     systemd OnCalendar for the backup timer, in UTC (default "$BACKUP_CALENDAR");
                       vantus.env gets it as VANTUS_BACKUP_SCHEDULE (cron) with VANTUS_BACKUP_RUNNER=external.
                       Forms: [Mon,Fri|Mon..Fri] [*-*-D] HH:MM[:00] [UTC], hourly, daily, weekly, monthly
  --no-firewall        leave ufw alone (e.g. a cloud firewall is in charge)
  --no-start           configure everything but do not start the stack
  --ready-attempts N   /readyz polls (2s apart) before giving up (default $READY_ATTEMPTS)
  --dry-run            print every action without doing it
  --check              verify the host only; exit 1 if anything is missing or unhealthy
  -h, --help           this help

Paths can be redirected with VANTUS_ROOT (a prefix for all of them) or VANTUS_ETC_DIR,
VANTUS_INSTALL_DIR, VANTUS_SYSTEMD_DIR, ... and VANTUS_OS_RELEASE (used by the test suite).
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --domain) DOMAIN=$2; shift 2 ;;
    --email) EMAIL=$2; shift 2 ;;
    --mode) MODE=$2; shift 2 ;;
    --install-dir) INSTALL_DIR=$2; shift 2 ;;
    --user) APP_USER=$2; shift 2 ;;
    --image) IMAGE=$2; shift 2 ;;
    --binary) BINARY=$2; shift 2 ;;
    --binary-url) BINARY_URL=$2; shift 2 ;;
    --binary-sha256) BINARY_SHA256=$2; shift 2 ;;
    --loki-url) LOKI_URL=$2; shift 2 ;;
    --ssh-port) SSH_PORT=$2; shift 2 ;;
    --backup-at) BACKUP_CALENDAR=$2; shift 2 ;;
    --no-firewall) FIREWALL=0; shift ;;
    --no-start) START=0; shift ;;
    --ready-attempts) READY_ATTEMPTS=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --check) CHECK=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 64 ;;
  esac
done

ENV_FILE="$ETC_DIR/vantus.env"
PLAN_ONLY=$(( DRY_RUN || CHECK ))
ACTIONS=0

# ---- the wrapper: every system command goes through run (changes) or q (read-only queries) ----
say() { printf '%s\n' "$*"; }
# run DESCRIPTION -- COMMAND...: a change. Counted; printed; executed unless planning.
run() {
  local desc=$1; shift
  [ "${1:-}" = "--" ] && shift
  ACTIONS=$((ACTIONS + 1))
  if [ "$PLAN_ONLY" = 1 ]; then
    say "  [plan] $desc: $*"
  else
    say "  [run]  $desc: $*"
    LAST_CMD="$*"
    "$@"
    LAST_CMD=""
  fi
}
# q COMMAND...: a read-only query, executed in every mode (tests stub these on PATH).
q() { "$@"; }
# write_file PATH MODE CONTENT: a change only when the content or mode differs.
write_file() {
  local path=$1 mode=$2 content=$3
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ] && [ "$(stat -c %a "$path")" = "$mode" ]; then return 0; fi
  ACTIONS=$((ACTIONS + 1))
  if [ "$PLAN_ONLY" = 1 ]; then say "  [plan] write $path (mode $mode)"; return 0; fi
  say "  [run]  write $path (mode $mode)"
  mkdir -p "$(dirname "$path")"
  local tmp
  tmp=$(mktemp "$path.XXXXXX")
  printf '%s\n' "$content" >"$tmp"
  chmod "$mode" "$tmp"
  mv "$tmp" "$path"
}
ensure_dir() { # ensure_dir PATH MODE OWNER
  local path=$1 mode=$2 owner=$3
  if [ -d "$path" ] && [ "$(stat -c %a "$path")" = "$mode" ]; then return 0; fi
  run "create directory $path" -- install -d -m "$mode" "$path"
  run "set owner of $path" -- chown "$owner" "$path"
}
# shellcheck disable=SC2016 # ${Status} is dpkg-query's format, not a shell variable
pkg_installed() { [ "$(q dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]; }
ensure_packages() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  run "refresh package lists" -- apt-get update -q
  run "install ${missing[*]}" -- env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}
ensure_enabled() { # ensure_enabled UNIT: enabled and running
  if q systemctl is-enabled --quiet "$1" 2>/dev/null && q systemctl is-active --quiet "$1" 2>/dev/null; then return 0; fi
  run "enable and start $1" -- systemctl enable --now "$1"
}
compose() { docker compose --project-directory "$INSTALL_DIR" "$@"; }

# ---- the backup timer's OnCalendar as a cron expression (VANTUS_BACKUP_SCHEDULE, UTC) ----------
# cal_field VALUE MIN MAX: one calendar component (*, N, A..B, A/STEP, or a comma list of those)
# printed as the same cron field; fails on anything else.
cal_field() {
  local value=$1 min=$2 max=$3 item a b out="" items
  [ "$value" = "*" ] && { echo "*"; return 0; }
  local re_num='^[0-9]+$' re_range='^([0-9]+)\.\.([0-9]+)$' re_step='^(\*|[0-9]+)/([0-9]+)$'
  IFS=, read -ra items <<<"$value"
  [ ${#items[@]} -gt 0 ] || return 1
  for item in "${items[@]}"; do
    if [[ $item =~ $re_num ]]; then
      a=$((10#$item)); [ "$a" -ge "$min" ] && [ "$a" -le "$max" ] || return 1
      out+=",$a"
    elif [[ $item =~ $re_range ]]; then
      a=$((10#${BASH_REMATCH[1]})); b=$((10#${BASH_REMATCH[2]}))
      [ "$a" -ge "$min" ] && [ "$a" -le "$b" ] && [ "$b" -le "$max" ] || return 1
      out+=",$a-$b"
    elif [[ $item =~ $re_step ]]; then
      b=$((10#${BASH_REMATCH[2]})); [ "$b" -ge 1 ] || return 1
      if [ "${BASH_REMATCH[1]}" = "*" ]; then out+=",*/$b"; else
        a=$((10#${BASH_REMATCH[1]})); [ "$a" -ge "$min" ] && [ "$a" -le "$max" ] || return 1
        out+=",$a-$max/$b"
      fi
    else
      return 1
    fi
  done
  echo "${out#,}"
}
# weekday NAME SUNDAY: 1-6 for Monday-Saturday, SUNDAY (0, or 7 at the end of a range) for Sunday.
weekday() {
  case "${1,,}" in
    mon|monday) echo 1 ;; tue|tuesday) echo 2 ;; wed|wednesday) echo 3 ;; thu|thursday) echo 4 ;;
    fri|friday) echo 5 ;; sat|saturday) echo 6 ;; sun|sunday) echo "$2" ;; *) return 1 ;;
  esac
}
cal_weekdays() { # cal_weekdays Mon,Wed..Fri -> 1,3-5
  local item a b out="" items re_range='^([A-Za-z]+)\.\.([A-Za-z]+)$'
  IFS=, read -ra items <<<"$1"
  [ ${#items[@]} -gt 0 ] || return 1
  for item in "${items[@]}"; do
    if [[ $item =~ $re_range ]]; then
      a=$(weekday "${BASH_REMATCH[1]}" 0) && b=$(weekday "${BASH_REMATCH[2]}" 7) || return 1
      [ "$a" -le "$b" ] || return 1
      out+=",$a-$b"
    else
      a=$(weekday "$item" 0) || return 1
      out+=",$a"
    fi
  done
  echo "${out#,}"
}
# calendar_to_cron SPEC: sets BACKUP_CRON (five fields, UTC) and BACKUP_ONCALENDAR (SPEC with an
# explicit UTC zone, for the timer). Fails on forms cron cannot express, and on other time zones:
# a cron schedule is UTC, and the two must fire at the same moment all year.
calendar_to_cron() {
  local spec=$1 tok tokens dow="" date="" time="" zone="" y mo d h m sec
  read -ra tokens <<<"$spec"
  [ ${#tokens[@]} -gt 0 ] || return 1
  for tok in "${tokens[@]}"; do
    case "$tok" in
      UTC|Etc/UTC) [ -z "$zone" ] || return 1; zone=$tok ;;
      hourly|daily|weekly|monthly)
        [ -z "$time" ] && [ -z "$date" ] && [ -z "$dow" ] || return 1
        case "$tok" in
          hourly) time="*:00:00" ;; daily) time="00:00:00" ;; weekly) dow=Mon; time="00:00:00" ;;
          monthly) date="*-*-01"; time="00:00:00" ;;
        esac ;;
      *:*) [ -z "$time" ] || return 1; time=$tok ;;
      *-*) [ -z "$date" ] || return 1; date=$tok ;;
      [A-Za-z]*) [ -z "$dow" ] || return 1; dow=$tok ;;
      *) return 1 ;;
    esac
  done
  [ -n "$time" ] || return 1
  IFS=: read -r h m sec <<<"$time"
  [ -n "$m" ] || return 1
  case "${sec:-00}" in 0|00) ;; *) return 1 ;; esac
  IFS=- read -r y mo d <<<"${date:-*-*-*}"
  if [ -z "$d" ]; then d=$mo; mo=$y; y="*"; fi
  [ "$y" = "*" ] || return 1
  h=$(cal_field "$h" 0 23) && m=$(cal_field "$m" 0 59) || return 1
  mo=$(cal_field "$mo" 1 12) && d=$(cal_field "$d" 1 31) || return 1
  if [ -n "$dow" ]; then dow=$(cal_weekdays "$dow") || return 1; else dow="*"; fi
  # systemd requires the day of month AND the weekday to match; cron fires on either.
  [ "$d" = "*" ] || [ "$dow" = "*" ] || return 1
  BACKUP_CRON="$m $h $d $mo $dow"
  BACKUP_ONCALENDAR=$spec
  [ -n "$zone" ] || BACKUP_ONCALENDAR="$spec UTC"
}
# env_value KEY: the value KEY has in the environment file (empty when unset or no file).
env_value() { if [ -f "$ENV_FILE" ]; then sed -n "s/^$1=//p" "$ENV_FILE" | tail -n 1; fi; }
conflict() { CONFLICTS=$((CONFLICTS + 1)); say "conflict: $*" >&2; }

# ---- steps --------------------------------------------------------------------------------------
step_preflight() {
  STEP="preflight"
  [ -r "$OS_RELEASE" ] || { say "cannot read $OS_RELEASE; is this Ubuntu?" >&2; exit 2; }
  local id version
  id=$(sed -n 's/^ID=//p' "$OS_RELEASE" | tr -d '"')
  version=$(sed -n 's/^VERSION_ID=//p' "$OS_RELEASE" | tr -d '"')
  case "$id:$version" in
    ubuntu:22.04|ubuntu:24.04) say "OS: Ubuntu $version (supported)" ;;
    *) say "unsupported OS: ID=$id VERSION_ID=$version. This script supports Ubuntu 22.04 and 24.04 only." >&2; exit 2 ;;
  esac
  case "$(q uname -m)" in x86_64|aarch64) ;; *) say "unsupported architecture: $(q uname -m)" >&2; exit 2 ;; esac
  case "$MODE" in docker|native) ;; *) say "--mode must be docker or native" >&2; exit 64 ;; esac
  if [ "$CHECK" = 0 ]; then
    [ -n "$DOMAIN" ] || { say "--domain is required (see --help)" >&2; exit 64; }
    [ -n "$EMAIL" ] || { say "--email is required (see --help)" >&2; exit 64; }
  fi
  if [ "$PLAN_ONLY" = 0 ] && [ "$(q id -u)" != 0 ]; then say "run as root (sudo), or use --dry-run / --check" >&2; exit 2; fi
  if [ "$MODE" = native ] && [ -z "$BINARY" ] && [ -z "$BINARY_URL" ] && [ ! -x "$BIN_DIR/vantus" ]; then
    say "native mode needs --binary PATH or --binary-url URL (no vantus binary installed yet)" >&2; exit 64
  fi
  [ -f "$SOURCE_DIR/deploy/compose/gen-env.sh" ] || { say "deploy files not found under $SOURCE_DIR (run from a checkout)" >&2; exit 2; }
  if ! calendar_to_cron "$BACKUP_CALENDAR"; then
    say "--backup-at \"$BACKUP_CALENDAR\": not a timer schedule that VANTUS_BACKUP_SCHEDULE (cron, UTC) can match." >&2
    say "Use e.g. \"*-*-* 03:00:00\", \"Mon..Fri 02:30\", \"*-*-* 00/6:00:00\" or \"daily\"; times are UTC (no other zone)." >&2
    exit 64
  fi
}

step_base_packages() {
  STEP="base packages"
  ensure_packages ca-certificates curl gnupg openssl ufw unattended-upgrades
}

step_unattended_upgrades() {
  STEP="unattended upgrades"
  write_file "$APT_DIR/apt.conf.d/20auto-upgrades" 644 'APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
APT::Periodic::AutocleanInterval "7";'
}

step_firewall() {
  STEP="firewall"
  [ "$FIREWALL" = 1 ] || { say "firewall: skipped (--no-firewall)"; return 0; }
  local status rule
  status=$(q ufw status 2>/dev/null || true)
  for rule in "$SSH_PORT/tcp" 80/tcp 443/tcp 443/udp; do
    printf '%s\n' "$status" | grep -qE "^${rule}[[:space:]]+ALLOW" || run "allow $rule" -- ufw allow "$rule"
  done
  printf '%s\n' "$status" | grep -q '^Status: active' || run "enable the firewall" -- ufw --force enable
}

step_user() {
  STEP="system user"
  q getent passwd "$APP_USER" >/dev/null 2>&1 && return 0
  run "create system user $APP_USER" -- useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home --shell /usr/sbin/nologin "$APP_USER"
}

step_directories() {
  STEP="directories"
  ensure_dir "$ETC_DIR" 750 "root:$APP_USER"
  ensure_dir "$BACKUP_DIR" 750 "$APP_USER:$APP_USER"
  if [ "$MODE" = native ]; then ensure_dir "$DATA_DIR" 750 "$APP_USER:$APP_USER"; else ensure_dir "$INSTALL_DIR" 755 root:root; fi
}

step_env_file() {
  STEP="environment file"
  local example="$SOURCE_DIR/deploy/compose/vantus.env.example"
  [ "$MODE" = native ] && example="$SOURCE_DIR/deploy/systemd/vantus.env.example"
  # vantus-backup.timer (step "systemd units") takes the backups in both modes, so `serve` must not,
  # and doctor judges freshness by the timer's schedule. These fill keys that are missing or empty;
  # a value already in the file is never changed (a disagreeing one is reported below).
  local sets=(--set "VANTUS_BACKUP_RUNNER=external" --set "VANTUS_BACKUP_SCHEDULE=$BACKUP_CRON")
  [ -n "$LOKI_URL" ] && sets+=(--set "VANTUS_LOG_SHIPPING=vector")
  local plan
  plan=$(q "$SOURCE_DIR/deploy/compose/gen-env.sh" --plan --out "$ENV_FILE" --example "$example" --domain "$DOMAIN" --email "$EMAIL" "${sets[@]}" | grep 'would set' || true)
  if [ -n "$plan" ]; then
    printf '%s\n' "$plan" | sed 's/^/         /'
    run "generate missing settings in $ENV_FILE (existing values kept)" -- \
      "$SOURCE_DIR/deploy/compose/gen-env.sh" --out "$ENV_FILE" --example "$example" --domain "$DOMAIN" --email "$EMAIL" "${sets[@]}"
  fi
  if [ -f "$ENV_FILE" ] && [ "$(stat -c %a "$ENV_FILE")" != 600 ]; then run "restrict $ENV_FILE to 0600" -- chmod 600 "$ENV_FILE"; fi
  local runner schedule
  runner=$(env_value VANTUS_BACKUP_RUNNER)
  schedule=$(env_value VANTUS_BACKUP_SCHEDULE)
  if [ -n "$runner" ] && [ "$runner" != external ]; then
    conflict "$ENV_FILE sets VANTUS_BACKUP_RUNNER=$runner, but vantus-backup.timer also takes backups, so every backup is taken twice. Set VANTUS_BACKUP_RUNNER=external there (this script never changes a value you set)."
  fi
  if [ -n "$schedule" ] && [ "$schedule" != "$BACKUP_CRON" ]; then
    conflict "$ENV_FILE sets VANTUS_BACKUP_SCHEDULE=$schedule, but the timer runs at \"$BACKUP_ONCALENDAR\" ($BACKUP_CRON); vantus doctor judges backup freshness by the former. Make them agree: edit the file or pass --backup-at."
  fi
}

step_docker() {
  STEP="docker engine"
  if q docker compose version >/dev/null 2>&1; then return 0; fi
  local codename arch
  codename=$(sed -n 's/^VERSION_CODENAME=//p' "$OS_RELEASE" | tr -d '"')
  arch=$(q dpkg --print-architecture)
  ensure_dir "$APT_DIR/keyrings" 755 root:root
  [ -f "$APT_DIR/keyrings/docker.asc" ] || run "fetch Docker's apt key" -- curl -fsSL https://download.docker.com/linux/ubuntu/gpg -o "$APT_DIR/keyrings/docker.asc"
  write_file "$APT_DIR/sources.list.d/docker.list" 644 \
    "deb [arch=$arch signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/ubuntu $codename stable"
  run "refresh package lists" -- apt-get update -q
  run "install Docker Engine and the compose plugin" -- env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin
  ensure_enabled docker
}

step_compose_files() {
  STEP="compose files"
  local f rel
  for rel in compose.yaml deploy/caddy/Caddyfile deploy/compose/postgres/primary-init.sh \
             deploy/compose/postgres/replica-entrypoint.sh deploy/compose/objectstore/entrypoint.sh \
             deploy/observability/vector.yaml deploy/observability/loki.yaml \
             deploy/observability/prometheus/prometheus.yml deploy/observability/prometheus/alerts.yml \
             deploy/observability/grafana/provisioning/datasources/datasources.yaml \
             deploy/observability/grafana/provisioning/dashboards/dashboards.yaml \
             deploy/observability/grafana/dashboards/vantus-overview.json; do
    f="$SOURCE_DIR/$rel"
    local mode=644
    case "$rel" in *.sh) mode=755 ;; esac
    write_file "$INSTALL_DIR/$rel" "$mode" "$(cat "$f")"
  done
  # Compose reads .env for interpolation: which image to run and where the secrets are.
  write_file "$INSTALL_DIR/.env" 644 "VANTUS_IMAGE=$IMAGE
VANTUS_ENV_FILE=$ENV_FILE"
}

step_native_binary() {
  STEP="vantus binary"
  local src="$BINARY"
  if [ -n "$BINARY_URL" ]; then
    src="$INSTALL_DIR/vantus.download"
    if [ -z "$BINARY_SHA256" ] || [ ! -f "$src" ] || [ "$(sha256sum "$src" | cut -d' ' -f1)" != "$BINARY_SHA256" ]; then
      run "download the vantus binary" -- curl -fsSL --retry 3 -o "$src" "$BINARY_URL"
      if [ "$PLAN_ONLY" = 0 ] && [ -n "$BINARY_SHA256" ]; then
        echo "$BINARY_SHA256  $src" | sha256sum -c - || { say "checksum mismatch for $BINARY_URL" >&2; exit 1; }
      fi
    fi
  fi
  [ -n "$src" ] || return 0
  if [ -f "$BIN_DIR/vantus" ] && [ -f "$src" ] && cmp -s "$src" "$BIN_DIR/vantus"; then return 0; fi
  run "install the vantus binary" -- install -D -m 0755 "$src" "$BIN_DIR/vantus"
}

step_native_proxy() {
  STEP="caddy (TLS reverse proxy)"
  if ! pkg_installed caddy; then
    # Ubuntu 24.04 ships caddy in universe; 22.04 needs Caddy's own apt repository.
    if ! q apt-cache policy caddy 2>/dev/null | grep -q 'Candidate: [0-9]'; then
      ensure_dir "$APT_DIR/keyrings" 755 root:root
      [ -f "$APT_DIR/keyrings/caddy-stable.asc" ] || run "fetch Caddy's apt key" -- curl -fsSL https://dl.cloudsmith.io/public/caddy/stable/gpg.key -o "$APT_DIR/keyrings/caddy-stable.asc"
      write_file "$APT_DIR/sources.list.d/caddy-stable.list" 644 \
        "deb [signed-by=/etc/apt/keyrings/caddy-stable.asc] https://dl.cloudsmith.io/public/caddy/stable/deb/debian any-version main"
    fi
    ensure_packages caddy
  fi
  write_file "$CADDY_DIR/Caddyfile" 644 "{
	email $EMAIL
}

$DOMAIN {
	reverse_proxy 127.0.0.1:8080 {
		lb_try_duration 5s
		health_uri /readyz
		health_interval 10s
	}
	@metrics path /metrics /metrics/*
	respond @metrics 404
	header -Server
	log {
		output stdout
		format json
	}
}"
}

step_units() {
  STEP="systemd units"
  local changed_before=$ACTIONS
  if [ "$MODE" = native ]; then
    write_file "$SYSTEMD_DIR/vantus.service" 644 "$(sed "s/^User=vantus/User=$APP_USER/; s/^Group=vantus/Group=$APP_USER/" "$SOURCE_DIR/deploy/systemd/vantus.service")"
  fi
  write_file "$SYSTEMD_DIR/vantus-backup.service" 644 "$(sed "s/^User=vantus/User=$APP_USER/; s/^Group=vantus/Group=$APP_USER/" "$SOURCE_DIR/deploy/systemd/vantus-backup.service")"
  write_file "$SYSTEMD_DIR/vantus-backup.timer" 644 "$(awk -v c="$BACKUP_ONCALENDAR" '/^OnCalendar=/ { print "OnCalendar=" c; next } { print }' "$SOURCE_DIR/deploy/systemd/vantus-backup.timer")"
  if [ "$MODE" = docker ]; then
    # The backup runs inside a one-off container of the same image, as the same user.
    write_file "$SYSTEMD_DIR/vantus-backup.service.d/docker.conf" 644 "[Service]
User=root
Group=root
ReadWritePaths=$INSTALL_DIR
ExecStart=
ExecStart=/usr/bin/docker compose --project-directory $INSTALL_DIR run --rm --no-deps -T vantus backup --to \${VANTUS_BACKUP_TO} --with-media --keep-daily 7 --keep-weekly 4"
  fi
  [ "$ACTIONS" = "$changed_before" ] || run "reload systemd" -- systemctl daemon-reload
}

step_log_shipping() {
  STEP="log shipping"
  if [ -z "$LOKI_URL" ]; then
    say "log shipping: not configured (pass --loki-url to ship logs with Vector); logs stay in journald/docker on this host"
    return 0
  fi
  if ! pkg_installed vector; then
    ensure_dir "$APT_DIR/keyrings" 755 root:root
    [ -f "$APT_DIR/keyrings/vector.asc" ] || run "fetch Vector's apt key" -- curl -fsSL https://keys.datadoghq.com/DATADOG_APT_KEY_CURRENT.public -o "$APT_DIR/keyrings/vector.asc"
    write_file "$APT_DIR/sources.list.d/vector.list" 644 "deb [signed-by=/etc/apt/keyrings/vector.asc] https://apt.vector.dev/ stable vector-0"
    ensure_packages vector
  fi
  local cfg="$SOURCE_DIR/deploy/observability/vector.yaml"
  [ "$MODE" = native ] && cfg="$SOURCE_DIR/deploy/observability/vector-journald.yaml"
  write_file "$VECTOR_DIR/vector.yaml" 644 "$(cat "$cfg")"
  write_file "$DEFAULTS_DIR/vector" 644 "LOKI_ENDPOINT=$LOKI_URL"
  if [ "$MODE" = docker ] && ! q id -nG vector 2>/dev/null | grep -qw docker; then
    run "let vector read container logs" -- usermod -aG docker vector
  fi
  ensure_enabled vector
}

step_start() {
  STEP="start"
  [ "$START" = 1 ] || { say "start: skipped (--no-start)"; return 0; }
  if [ "$MODE" = docker ]; then
    local running
    running=$(q docker compose --project-directory "$INSTALL_DIR" ps --status running --services 2>/dev/null || true)
    if ! printf '%s\n' "$running" | grep -qx vantus || ! printf '%s\n' "$running" | grep -qx caddy || [ "$ACTIONS" -gt 0 ]; then
      run "pull images" -- docker compose --project-directory "$INSTALL_DIR" pull --quiet
      run "start the stack and wait for health" -- docker compose --project-directory "$INSTALL_DIR" up -d --wait --wait-timeout 300
    fi
  else
    ensure_enabled caddy
    ensure_enabled vantus
  fi
  ensure_enabled vantus-backup.timer
}

readiness() {
  if [ "$MODE" = docker ]; then q docker compose --project-directory "$INSTALL_DIR" exec -T vantus /vantus healthcheck >/dev/null 2>&1
  else q curl -fsS --max-time 3 -o /dev/null http://127.0.0.1:8080/readyz; fi
}

step_verify() {
  STEP="verify"
  if [ "$DRY_RUN" = 1 ] || [ "$START" = 0 ]; then return 0; fi
  local ready=0
  for _ in $(seq 1 "$READY_ATTEMPTS"); do
    if readiness; then ready=1; break; fi
    [ "$CHECK" = 1 ] && break
    sleep 2
  done
  if [ "$ready" = 1 ]; then say "readiness: /readyz OK"; else
    say "readiness: /readyz did NOT answer 200 (docs/operations/deploy-single-server.md#when-it-fails)" >&2
    return 1
  fi
  STEP="doctor"
  if [ "$MODE" = docker ]; then
    q docker compose --project-directory "$INSTALL_DIR" exec -T vantus /vantus doctor
  else
    q systemd-run --quiet --wait --pipe --collect --uid="$APP_USER" --property=EnvironmentFile="$ENV_FILE" "$BIN_DIR/vantus" doctor
  fi
}

main() {
  local verb="Provisioning"
  [ "$DRY_RUN" = 1 ] && verb="Dry run: planning"
  [ "$CHECK" = 1 ] && verb="Checking"
  say "$verb Vantus ($MODE mode) for ${DOMAIN:-<no domain>}"
  step_preflight
  step_base_packages
  step_unattended_upgrades
  step_firewall
  step_user
  step_directories
  step_env_file
  if [ "$MODE" = docker ]; then step_docker; step_compose_files; else step_native_binary; step_native_proxy; fi
  step_units
  step_log_shipping
  step_start
  local planned=$ACTIONS
  STEP="summary"
  if [ "$PLAN_ONLY" = 1 ]; then
    if [ "$planned" = 0 ]; then say "Nothing to do: the host already matches the desired state."
    else say "Planned $planned action(s); nothing was changed."; fi
  else
    if [ "$planned" = 0 ]; then say "Nothing to do: the host already matches the desired state."
    else say "Applied $planned action(s)."; fi
  fi
  [ "$CONFLICTS" = 0 ] || say "$CONFLICTS conflict(s) in $ENV_FILE need an edit by hand (see above)."
  if [ "$CHECK" = 1 ]; then
    local healthy=0
    step_verify || healthy=1
    if [ "$planned" -gt 0 ] || [ "$CONFLICTS" -gt 0 ] || [ "$healthy" -ne 0 ]; then
      say "CHECK FAILED: $planned item(s) differ from the desired state, $CONFLICTS conflict(s); health: $([ "$healthy" = 0 ] && echo ok || echo failing)"; exit 1
    fi
    say "CHECK PASSED"
    return 0
  fi
  step_verify
  [ "$DRY_RUN" = 1 ] || say "Done. The site is live on https://$DOMAIN (operations guide: docs/operations/deploy-single-server.md)."
}

main
