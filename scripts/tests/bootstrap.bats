#!/usr/bin/env bats
# Tests for scripts/bootstrap-ubuntu22.sh. Every system command it runs is replaced by
# fixtures/stub-command (linked under each name into a PATH directory); all paths it touches
# point into a per-test temp dir. Runs as root or as an unprivileged user: nothing here needs
# privileges. Run: bats scripts/tests/bootstrap.bats   (or scripts/test-bootstrap)

bats_require_minimum_version 1.5.0  # `run -N` / `run !` below

STUBBED="id uname dpkg dpkg-query apt-get apt-cache env getent useradd usermod chown gpg systemctl ufw docker curl systemd-run"

setup() {
  REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
  SCRIPT="$REPO/scripts/bootstrap-ubuntu22.sh"
  T="$BATS_TEST_TMPDIR"
  mkdir -p "$T/bin" "$T/root/etc" "$T/state"
  for c in $STUBBED; do ln -s "$REPO/scripts/tests/fixtures/stub-command" "$T/bin/$c"; done
  export PATH="$T/bin:$PATH"
  export STUB_STATE="$T/state" STUB_LOG="$T/calls.log"
  : >"$STUB_LOG"
  export VANTUS_ROOT="$T/root"
  export VANTUS_SOURCE_DIR="$REPO"
  write_os_release ubuntu 22.04 jammy
  printf 'static binary stand-in\n' >"$T/vantus-binary"
}

write_os_release() {
  printf 'NAME="%s"\nID=%s\nVERSION_ID="%s"\nVERSION_CODENAME=%s\n' "$1" "$1" "$2" "$3" >"$VANTUS_ROOT/etc/os-release"
}

bootstrap() { run "$SCRIPT" --domain vantus.test --email ops@vantus.test "$@"; }

# Commands that change the host (as opposed to queries).
mutations() { grep -E '^(apt-get (update|install)|useradd|usermod|chown|ufw (allow|--force)|systemctl (enable|daemon-reload)|docker compose .* (up|pull)|curl .* -o )' "$STUB_LOG" || true; }

@test "--help exits 0 and documents the flags" {
  run "$SCRIPT" --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"--dry-run"* ]]
  [[ "$output" == *"--check"* ]]
  [[ "$output" == *"--mode MODE"* ]]
  [[ "$output" == *"--domain NAME"* ]]
}

@test "unknown options are rejected with exit 64" {
  run "$SCRIPT" --frobnicate
  [ "$status" -eq 64 ]
}

@test "refuses CentOS" {
  write_os_release centos 9 stream
  bootstrap --dry-run
  [ "$status" -eq 2 ]
  [[ "$output" == *"unsupported OS: ID=centos VERSION_ID=9"* ]]
  [ -z "$(mutations)" ]
}

@test "refuses Ubuntu 20.04" {
  write_os_release ubuntu 20.04 focal
  bootstrap
  [ "$status" -eq 2 ]
  [[ "$output" == *"unsupported OS: ID=ubuntu VERSION_ID=20.04"* ]]
  [ -z "$(mutations)" ]
}

@test "accepts Ubuntu 24.04" {
  write_os_release ubuntu 24.04 noble
  bootstrap --dry-run
  [ "$status" -eq 0 ]
  [[ "$output" == *"OS: Ubuntu 24.04 (supported)"* ]]
}

@test "--domain and --email are required unless --check" {
  run "$SCRIPT" --dry-run --email ops@vantus.test
  [ "$status" -eq 64 ]
  [[ "$output" == *"--domain is required"* ]]
}

@test "dry run on a fresh host plans every step and changes nothing" {
  bootstrap --dry-run
  [ "$status" -eq 0 ]
  [[ "$output" == *"[plan] install ca-certificates curl gnupg openssl ufw unattended-upgrades"* ]]
  [[ "$output" == *"[plan] write $VANTUS_ROOT/etc/apt/apt.conf.d/20auto-upgrades"* ]]
  [[ "$output" == *"[plan] allow 22/tcp: ufw allow 22/tcp"* ]]
  [[ "$output" == *"[plan] allow 80/tcp"* ]]
  [[ "$output" == *"[plan] allow 443/tcp"* ]]
  [[ "$output" == *"[plan] enable the firewall: ufw --force enable"* ]]
  [[ "$output" == *"[plan] create system user vantus"* ]]
  [[ "$output" == *"would set VANTUS_SECRET_KEY (generated secret)"* ]]
  [[ "$output" == *"[plan] install Docker Engine and the compose plugin"* ]]
  [[ "$output" == *"[plan] write $VANTUS_ROOT/opt/vantus/compose.yaml"* ]]
  [[ "$output" == *"[plan] write $VANTUS_ROOT/etc/systemd/system/vantus-backup.timer"* ]]
  [[ "$output" == *"[plan] enable and start vantus-backup.timer"* ]]
  [[ "$output" == *"[plan] start the stack and wait for health"* ]]
  [[ "$output" == *"nothing was changed"* ]]
  [ -z "$(mutations)" ]
  [ ! -e "$VANTUS_ROOT/etc/vantus/vantus.env" ]
  [ ! -e "$VANTUS_ROOT/opt/vantus" ]
}

@test "a real run applies the plan, polls /readyz and runs vantus doctor" {
  bootstrap --ready-attempts 3
  [ "$status" -eq 0 ]
  [[ "$output" == *"Applied"* ]]
  [[ "$output" == *"readiness: /readyz OK"* ]]
  grep -q '^useradd --system --user-group .* vantus$' "$STUB_LOG"
  grep -q '^ufw allow 443/tcp$' "$STUB_LOG"
  grep -q '^docker compose --project-directory .* up -d --wait' "$STUB_LOG"
  grep -q '^docker compose --project-directory .* exec -T vantus /vantus doctor$' "$STUB_LOG"
  [ "$(stat -c %a "$VANTUS_ROOT/etc/vantus/vantus.env")" = 600 ]
  grep -Eq '^VANTUS_SECRET_KEY=[0-9a-f]{64}$' "$VANTUS_ROOT/etc/vantus/vantus.env"
  grep -q '^VANTUS_PUBLIC_URL=https://vantus.test$' "$VANTUS_ROOT/etc/vantus/vantus.env"
  grep -q "^VANTUS_ENV_FILE=$VANTUS_ROOT/etc/vantus/vantus.env$" "$VANTUS_ROOT/opt/vantus/.env"
  cmp "$REPO/compose.yaml" "$VANTUS_ROOT/opt/vantus/compose.yaml"
}

@test "idempotent: after a real run, a second run plans nothing and says so" {
  bootstrap --ready-attempts 3
  [ "$status" -eq 0 ]
  cp "$VANTUS_ROOT/etc/vantus/vantus.env" "$T/env.after-first"
  : >"$STUB_LOG"

  bootstrap --dry-run
  [ "$status" -eq 0 ]
  [[ "$output" == *"Nothing to do: the host already matches the desired state."* ]]
  [[ "$output" != *"[plan]"* ]]

  bootstrap --ready-attempts 3
  [ "$status" -eq 0 ]
  [[ "$output" == *"Nothing to do"* ]]
  [[ "$output" != *"[run]"* ]]
  [ -z "$(mutations)" ]
  cmp "$T/env.after-first" "$VANTUS_ROOT/etc/vantus/vantus.env"
}

@test "existing secrets in vantus.env are kept byte-for-byte" {
  mkdir -p "$VANTUS_ROOT/etc/vantus"
  printf '%s\n' \
    '# hand-written by the operator' \
    'VANTUS_SECRET_KEY=3f1c-operator-chosen-value-that-must-not-change-0123456789abcdef' \
    'POSTGRES_PASSWORD=keep me exactly, spaces and all' \
    'SMTP_URL=smtp://mailer.internal:587' >"$VANTUS_ROOT/etc/vantus/vantus.env"
  chmod 644 "$VANTUS_ROOT/etc/vantus/vantus.env"
  cp "$VANTUS_ROOT/etc/vantus/vantus.env" "$T/env.orig"

  bootstrap --ready-attempts 3
  [ "$status" -eq 0 ]
  env_file="$VANTUS_ROOT/etc/vantus/vantus.env"
  # The original bytes are untouched (new keys are only appended) ...
  head -c "$(wc -c <"$T/env.orig")" "$env_file" | cmp - "$T/env.orig"
  # ... the missing secrets were generated, derived URLs use the kept password ...
  grep -Eq '^REDIS_PASSWORD=[0-9a-f]{64}$' "$env_file"
  grep -q '^DATABASE_URL=postgres://vantus:keep me exactly, spaces and all@postgres:5432/vantus$' "$env_file"
  [ "$(grep -c '^VANTUS_SECRET_KEY=' "$env_file")" -eq 1 ]
  # ... and the file was tightened to 0600.
  [ "$(stat -c %a "$env_file")" = 600 ]
}

@test "--check passes on a provisioned host and fails on a fresh one without changing it" {
  run "$SCRIPT" --check
  [ "$status" -eq 1 ]
  [[ "$output" == *"CHECK FAILED"* ]]
  [ -z "$(mutations)" ]

  bootstrap --ready-attempts 3
  [ "$status" -eq 0 ]
  : >"$STUB_LOG"
  run "$SCRIPT" --check
  [ "$status" -eq 0 ]
  [[ "$output" == *"CHECK PASSED"* ]]
  [ -z "$(mutations)" ]
}

@test "--check notices a stopped stack" {
  bootstrap --ready-attempts 3
  [ "$status" -eq 0 ]
  rm "$STUB_STATE/compose-up"
  run "$SCRIPT" --check
  [ "$status" -eq 1 ]
  [[ "$output" == *"[plan] start the stack"* ]]
}

@test "native mode: binary, hardened unit and Caddy; idempotent" {
  bootstrap --mode native --binary "$T/vantus-binary" --dry-run
  [ "$status" -eq 0 ]
  [[ "$output" == *"[plan] install the vantus binary"* ]]
  [[ "$output" == *"[plan] write $VANTUS_ROOT/etc/systemd/system/vantus.service"* ]]
  [[ "$output" == *"[plan] write $VANTUS_ROOT/etc/caddy/Caddyfile"* ]]
  [[ "$output" != *"Docker Engine"* ]]

  bootstrap --mode native --binary "$T/vantus-binary" --ready-attempts 3
  [ "$status" -eq 0 ]
  cmp "$T/vantus-binary" "$VANTUS_ROOT/usr/local/bin/vantus"
  grep -q '^ProtectSystem=strict$' "$VANTUS_ROOT/etc/systemd/system/vantus.service"
  grep -q '^NoNewPrivileges=yes$' "$VANTUS_ROOT/etc/systemd/system/vantus.service"
  grep -q '^VANTUS_LISTEN=127.0.0.1:8080$' "$VANTUS_ROOT/etc/vantus/vantus.env"
  grep -q '^vantus.test {$' "$VANTUS_ROOT/etc/caddy/Caddyfile"
  grep -q '^systemd-run .* --uid=vantus .*/vantus doctor$' "$STUB_LOG"

  : >"$STUB_LOG"
  bootstrap --mode native --binary "$T/vantus-binary" --dry-run
  [ "$status" -eq 0 ]
  [[ "$output" == *"Nothing to do"* ]]
}

@test "flags replace defaults: user, install dir, image, ssh port, backup time" {
  bootstrap --user svc-web --install-dir "$T/srv/web" --image registry.test/vantus:9.9.9 \
    --ssh-port 2222 --backup-at '*-*-* 01:30:00' --ready-attempts 3
  [ "$status" -eq 0 ]
  grep -q '^useradd .* svc-web$' "$STUB_LOG"
  grep -q '^ufw allow 2222/tcp$' "$STUB_LOG"
  run ! grep -q '^ufw allow 22/tcp$' "$STUB_LOG"
  grep -q '^VANTUS_IMAGE=registry.test/vantus:9.9.9$' "$T/srv/web/.env"
  grep -q '^OnCalendar=\*-\*-\* 01:30:00 UTC$' "$VANTUS_ROOT/etc/systemd/system/vantus-backup.timer"
  grep -qx 'VANTUS_BACKUP_SCHEDULE=30 1 \* \* \*' "$VANTUS_ROOT/etc/vantus/vantus.env"
  grep -q '^User=svc-web$' "$VANTUS_ROOT/etc/systemd/system/vantus-backup.service"
}

@test "log shipping with --loki-url installs Vector with the Loki endpoint" {
  bootstrap --loki-url https://loki.vantus.test --ready-attempts 3
  [ "$status" -eq 0 ]
  grep -q '^LOKI_ENDPOINT=https://loki.vantus.test$' "$VANTUS_ROOT/etc/default/vector"
  cmp "$REPO/deploy/observability/vector.yaml" "$VANTUS_ROOT/etc/vector/vector.yaml"
  grep -q '^systemctl enable --now vector$' "$STUB_LOG"
  # ... and declares the shipper, so vantus doctor knows logs leave the host.
  [ "$(grep -c '^VANTUS_LOG_SHIPPING=' "$VANTUS_ROOT/etc/vantus/vantus.env")" -eq 1 ]
  grep -qx 'VANTUS_LOG_SHIPPING=vector' "$VANTUS_ROOT/etc/vantus/vantus.env"
}

@test "without --loki-url no log shipper is declared" {
  bootstrap --ready-attempts 3
  [ "$status" -eq 0 ]
  grep -qx 'VANTUS_LOG_SHIPPING=' "$VANTUS_ROOT/etc/vantus/vantus.env"
}

@test "--loki-url on an existing host fills an empty VANTUS_LOG_SHIPPING and keeps a set one" {
  env_file="$VANTUS_ROOT/etc/vantus/vantus.env"
  # First run without a shipper: the key is written empty.
  bootstrap --ready-attempts 3
  [ "$status" -eq 0 ]
  grep -qx 'VANTUS_LOG_SHIPPING=' "$env_file"
  # Adding --loki-url later fills that empty line in place (no duplicate line).
  bootstrap --loki-url https://loki.vantus.test --ready-attempts 3
  [ "$status" -eq 0 ]
  [ "$(grep -c '^VANTUS_LOG_SHIPPING=' "$env_file")" -eq 1 ]
  grep -qx 'VANTUS_LOG_SHIPPING=vector' "$env_file"

  # An operator's own value is never replaced.
  sed -i 's/^VANTUS_LOG_SHIPPING=.*/VANTUS_LOG_SHIPPING=fluent-bit/' "$env_file"
  cp "$env_file" "$T/env.before"
  bootstrap --loki-url https://loki.vantus.test --ready-attempts 3
  [ "$status" -eq 0 ]
  cmp "$T/env.before" "$env_file"
  grep -qx 'VANTUS_LOG_SHIPPING=fluent-bit' "$env_file"
}

@test "the backup timer runs backups: vantus.env says external, with the timer's schedule (docker and native)" {
  bootstrap --ready-attempts 3
  [ "$status" -eq 0 ]
  env_file="$VANTUS_ROOT/etc/vantus/vantus.env"
  grep -q '^OnCalendar=\*-\*-\* 03:00:00 UTC$' "$VANTUS_ROOT/etc/systemd/system/vantus-backup.timer"
  [ "$(grep -c '^VANTUS_BACKUP_RUNNER=' "$env_file")" -eq 1 ]
  [ "$(grep -c '^VANTUS_BACKUP_SCHEDULE=' "$env_file")" -eq 1 ]
  grep -qx 'VANTUS_BACKUP_RUNNER=external' "$env_file"
  grep -qx 'VANTUS_BACKUP_SCHEDULE=0 3 \* \* \*' "$env_file"
  # The compose template alone means `serve` runs backups; the bootstrap's timer replaces that.
  grep -qx 'VANTUS_BACKUP_RUNNER=serve' "$REPO/deploy/compose/vantus.env.example"

  VANTUS_ETC_DIR="$T/native-etc" bootstrap --mode native --binary "$T/vantus-binary" --backup-at 'Mon..Fri 02:30' --ready-attempts 3
  [ "$status" -eq 0 ]
  grep -q '^OnCalendar=Mon\.\.Fri 02:30 UTC$' "$VANTUS_ROOT/etc/systemd/system/vantus-backup.timer"
  grep -qx 'VANTUS_BACKUP_RUNNER=external' "$T/native-etc/vantus.env"
  grep -qx 'VANTUS_BACKUP_SCHEDULE=30 2 \* \* 1-5' "$T/native-etc/vantus.env"
  [ "$(grep -c '^VANTUS_BACKUP_SCHEDULE=' "$T/native-etc/vantus.env")" -eq 1 ]
}

@test "--backup-at forms translate to the same schedule in cron (UTC)" {
  local spec cron i=0
  while IFS='|' read -r spec cron; do
    i=$((i + 1))
    VANTUS_ETC_DIR="$T/etc-$i" bootstrap --backup-at "$spec" --no-start
    [ "$status" -eq 0 ] || { echo "--backup-at '$spec' failed: $output"; return 1; }
    grep -qxF "VANTUS_BACKUP_SCHEDULE=$cron" "$T/etc-$i/vantus.env" \
      || { echo "'$spec' gave: $(grep '^VANTUS_BACKUP_SCHEDULE=' "$T/etc-$i/vantus.env")"; return 1; }
    if command -v systemd-analyze >/dev/null 2>&1; then
      systemd-analyze calendar "$(sed -n 's/^OnCalendar=//p' "$VANTUS_ROOT/etc/systemd/system/vantus-backup.timer")" >/dev/null
    fi
  done <<'SPECS'
*-*-* 03:00:00|0 3 * * *
*-*-* 01:30:00 UTC|30 1 * * *
04:15|15 4 * * *
daily|0 0 * * *
hourly|0 * * * *
weekly|0 0 * * 1
Mon,Thu *-*-* 03:00:00|0 3 * * 1,4
Sat..Sun 01:00|0 1 * * 6-7
*-*-* 00/6:00:00|0 0-23/6 * * *
*-*-* 03,15:00:00 Etc/UTC|0 3,15 * * *
*-*-01 04:00:00|0 4 1 * *
SPECS
}

@test "--backup-at that cron cannot match (another time zone, seconds) is refused before any change" {
  local spec
  for spec in '*-*-* 03:00:00 Europe/Berlin' '*-*-* 03:00:30' 'Mon *-*-01 03:00' 'at three'; do
    bootstrap --backup-at "$spec"
    [ "$status" -eq 64 ] || { echo "'$spec' gave $status"; return 1; }
    [[ "$output" == *"--backup-at"*"cron, UTC"* ]]
    [ -z "$(mutations)" ]
    [ ! -e "$VANTUS_ROOT/etc/vantus/vantus.env" ]
  done
}

@test "backup settings already in vantus.env are kept; a disagreement is reported and fails --check" {
  mkdir -p "$VANTUS_ROOT/etc/vantus"
  printf '%s\n' \
    '# hand-written by the operator' \
    'VANTUS_BACKUP_RUNNER=serve' \
    'VANTUS_BACKUP_SCHEDULE=15 2 * * *' >"$VANTUS_ROOT/etc/vantus/vantus.env"
  cp "$VANTUS_ROOT/etc/vantus/vantus.env" "$T/env.orig"

  bootstrap --ready-attempts 3
  [ "$status" -eq 0 ]
  env_file="$VANTUS_ROOT/etc/vantus/vantus.env"
  head -c "$(wc -c <"$T/env.orig")" "$env_file" | cmp - "$T/env.orig"
  [ "$(grep -c '^VANTUS_BACKUP_RUNNER=' "$env_file")" -eq 1 ]
  [ "$(grep -c '^VANTUS_BACKUP_SCHEDULE=' "$env_file")" -eq 1 ]
  [[ "$output" == *"conflict: $env_file sets VANTUS_BACKUP_RUNNER=serve"*"taken twice"* ]]
  [[ "$output" == *"conflict: $env_file sets VANTUS_BACKUP_SCHEDULE=15 2 * * *"*"(0 3 * * *)"* ]]

  run "$SCRIPT" --check
  [ "$status" -eq 1 ]
  [[ "$output" == *"CHECK FAILED"*"2 conflict(s)"* ]]

  # Once the operator makes them agree, the host checks clean.
  sed -i 's/^VANTUS_BACKUP_RUNNER=.*/VANTUS_BACKUP_RUNNER=external/; s/^VANTUS_BACKUP_SCHEDULE=.*/VANTUS_BACKUP_SCHEDULE=0 3 * * */' "$env_file"
  run "$SCRIPT" --check
  [ "$status" -eq 0 ]
  [[ "$output" == *"CHECK PASSED"* ]]
}

@test "an older install (schedule set, no runner) gets VANTUS_BACKUP_RUNNER=external appended" {
  bootstrap --ready-attempts 3
  [ "$status" -eq 0 ]
  env_file="$VANTUS_ROOT/etc/vantus/vantus.env"
  sed -i '/^VANTUS_BACKUP_RUNNER=/d' "$env_file"
  cp "$env_file" "$T/env.old"

  bootstrap --ready-attempts 3
  [ "$status" -eq 0 ]
  head -c "$(wc -c <"$T/env.old")" "$env_file" | cmp - "$T/env.old"
  [ "$(tail -n 1 "$env_file")" = "VANTUS_BACKUP_RUNNER=external" ]
  [[ "$output" != *"conflict"* ]]
}

@test "gen-env --set supplies a value only where the file has none" {
  gen="$REPO/deploy/compose/gen-env.sh"
  printf 'A=template-a\nB=\nC=template-c\n' >"$T/example"
  printf 'A=mine\nB=\n' >"$T/out"
  run "$gen" --example "$T/example" --out "$T/out" --set A=set-a --set B=set-b --set C=set-c --set D=set-d
  [ "$status" -eq 0 ]
  [ "$(cat "$T/out")" = "$(printf 'A=mine\nB=set-b\nC=set-c\nD=set-d')" ]
  run "$gen" --example "$T/example" --out "$T/out" --set A=other --set D=other --plan
  [ "$status" -eq 0 ]
  [[ "$output" == *"is complete; nothing to change"* ]]
  run "$gen" --example "$T/example" --out "$T/out" --set 'not a pair'
  [ "$status" -eq 64 ]
}

@test "a failing command stops the run and the trap names the step" {
  STUB_FAIL=useradd bootstrap --ready-attempts 3
  [ "$status" -ne 0 ]
  [[ "$output" == *'FAILED in step "system user"'* ]]
  run ! grep -q '^docker compose .* up ' "$STUB_LOG"
}

@test "stack that never becomes ready fails after a bounded number of polls" {
  # The stub reports healthy only once the stack is "up"; --no-start leaves it down.
  bootstrap --ready-attempts 2
  [ "$status" -eq 0 ]
  rm "$STUB_STATE/compose-up"
  run "$SCRIPT" --check
  [ "$status" -eq 1 ]
  [[ "$output" == *"health: failing"* ]]
}
