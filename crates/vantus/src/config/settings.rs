//! The table of every setting: its names, its default, its help text.
//!
//! Parse sites read defaults from here ([`default_of`]), so each default is written once, and
//! `--help` and the README are checked against it.

/// One documented setting.
pub struct Setting {
    pub env: &'static str,
    /// Dotted key in the TOML file (`database.url` is `[database] url = ...`).
    pub toml: &'static str,
    pub default: &'static str,
    pub help: &'static str,
    /// Secret values are never printed and may also come from `NAME_FILE`.
    pub secret: bool,
}

macro_rules! settings {
    ($( $env:literal, $toml:literal, $default:literal, $secret:literal, $help:literal; )*) => {
        /// All settings Vantus reads, in the order the docs present them.
        pub const SETTINGS: &[Setting] = &[
            $( Setting { env: $env, toml: $toml, default: $default, help: $help, secret: $secret }, )*
        ];
    };
}

settings! {
    "VANTUS_CONFIG", "", "(none)", false,
        "Path to an optional TOML file with any of these settings; environment variables win over it.";
    "VANTUS_ENV", "env", "development", false,
        "`development` or `production`. Production refuses to start without strong secrets and a public URL.";
    "VANTUS_LISTEN", "listen", "127.0.0.1:8080", false,
        "Address and port the HTTP server binds, e.g. 0.0.0.0:8080 in a container.";
    "VANTUS_PUBLIC_URL", "public_url", "http://<VANTUS_LISTEN>", false,
        "Absolute URL visitors use; canonical links, sitemap and feed are built from it. Required in production.";
    "VANTUS_DATA_DIR", "data_dir", "./var", false,
        "Folder for the embedded SQLite database, the generated development secret and local media.";
    "VANTUS_SECRET_KEY", "secret_key", "(generated in development)", true,
        "At least 32 random characters (e.g. `openssl rand -hex 32`). Required in production; in development a random key is kept in the data folder.";
    "DATABASE_URL", "database.url", "sqlite://<VANTUS_DATA_DIR>/vantus.db", true,
        "`sqlite://path` or `postgres://user:password@host/db`.";
    "DATABASE_REPLICA_URLS", "database.replica_urls", "(none)", true,
        "Comma-separated PostgreSQL read replicas. Public page reads go there and fall back to the primary.";
    "DATABASE_MAX_CONNECTIONS", "database.max_connections", "10", false,
        "Connections per pool (primary, and each replica).";
    "DATABASE_REPLICA_MAX_LAG", "database.replica_max_lag", "10s", false,
        "A replica further behind than this is skipped until it catches up.";
    "DATABASE_CONNECT_TIMEOUT", "database.connect_timeout", "30s", false,
        "How long `serve` keeps retrying an unreachable database at start-up before giving up.";
    "VANTUS_SITE_TENANT", "site_tenant", "default", false,
        "Slug of the tenant whose content the public site shows.";
    "VANTUS_REQUEST_TIMEOUT", "http.request_timeout", "15s", false,
        "Longest time a request may take before it is answered with 504 (408 if its body is still arriving).";
    "VANTUS_DRAIN_TIMEOUT", "http.drain_timeout", "25s", false,
        "On SIGTERM, how long in-flight requests may take to finish before the process exits.";
    "VANTUS_SHUTDOWN_DELAY", "http.shutdown_delay", "0s", false,
        "On SIGTERM, how long to go on serving with /readyz already answering 503, so a load balancer's health checks take this instance out before it stops accepting connections. Set it above the balancer's check interval × fall count (3s for HAProxy `inter 1s fall 2`); leave 0 on Kubernetes, whose preStop sleep does the same.";
    "VANTUS_HEADER_READ_TIMEOUT", "http.header_read_timeout", "10s", false,
        "A request's headers must arrive within this time of the connection being ready for it (opened, or the previous response sent); slower connections are closed.";
    "VANTUS_KEEP_ALIVE_TIMEOUT", "http.keep_alive_timeout", "5s", false,
        "Connections with no request in flight that stay silent this long are closed. Keep a load balancer's idle timeout below it.";
    "VANTUS_MAX_CONNECTIONS", "http.max_connections", "4096", false,
        "Most client connections served at once (lowered to fit the open-file limit); more wait in the listen backlog.";
    "VANTUS_BODY_LIMIT", "http.body_limit", "64KiB", false,
        "Largest accepted request body (B, KiB, MiB).";
    "VANTUS_TRUSTED_PROXIES", "http.trusted_proxies", "(none)", false,
        "Comma-separated CIDRs of load balancers whose X-Forwarded-For is believed, e.g. 10.0.0.0/8.";
    "VANTUS_LEADS_NOTIFY", "leads.notify", "(the tenant's contact email)", false,
        "Comma-separated addresses told about each new lead by email (through the outbox).";
    "VANTUS_FORM_MIN_FILL_TIME", "leads.min_fill_time", "3s", false,
        "A contact form sent sooner than this after it was rendered is stored as spam (people type slower than bots).";
    "VANTUS_FORM_MAX_AGE", "leads.max_form_age", "1day", false,
        "A contact form older than this when sent is stored as spam (a replayed token); the visitor still sees the thank-you page.";
    "VANTUS_SPAM_MAX_LINKS", "leads.spam_max_links", "3", false,
        "A message with more links than this is stored as spam.";
    "VANTUS_SPAM_BLOCKED_DOMAINS", "leads.spam_blocked_domains", "(none)", false,
        "Comma-separated email domains (and their subdomains) whose submissions are stored as spam.";
    "VANTUS_SPAM_RETENTION", "leads.spam_retention", "30days", false,
        "Submissions stored as spam are deleted this long after they arrived (staff can rescue one before).";
    "VANTUS_CONTENT_SCHEDULE_TICK", "content.schedule_tick", "30s", false,
        "How often scheduled publishes and unpublishes are looked for (one replica runs each tick); a schedule runs at the first tick at or after its time. Must divide a minute or an hour evenly (1s, 5s, 30s, 1m, 5m…).";
    "VANTUS_CONTENT_PREVIEW_TTL", "content.preview_ttl", "24h", false,
        "How long a signed preview link of a draft works after it was made.";
    "VANTUS_RATE_LIMIT_FORMS", "rate_limit.forms", "10/10m", false,
        "Contact-form submissions allowed per client (IP, IPv6 /64) and period; more get 429 with Retry-After.";
    "VANTUS_RATE_LIMIT_API", "rate_limit.api", "60/1m", false,
        "POST /api/leads requests allowed per client and period.";
    "VANTUS_ARGON2_MEMORY_KIB", "auth.argon2_memory_kib", "19456", false,
        "Memory one staff password hash uses, in KiB (argon2id; OWASP's 19 MiB by default, 8 MiB to 1 GiB).";
    "VANTUS_ARGON2_ITERATIONS", "auth.argon2_iterations", "2", false,
        "Passes over that memory per hash (argon2id's t, 1 to 20).";
    "VANTUS_ARGON2_PARALLELISM", "auth.argon2_parallelism", "1", false,
        "Lanes per hash (argon2id's p, 1 to 16).";
    "VANTUS_PASSWORD_HASHES_AT_ONCE", "auth.hashes_at_once", "2", false,
        "Password hashes computed at once, off the request threads; more logins wait, so a burst cannot starve the server.";
    "VANTUS_SESSION_IDLE_TIMEOUT", "auth.session_idle_timeout", "30m", false,
        "A portal session unused this long ends; the person signs in again.";
    "VANTUS_SESSION_MAX_AGE", "auth.session_max_age", "12h", false,
        "A portal session ends this long after sign-in, however much it is used.";
    "VANTUS_MFA_KEY", "auth.mfa_key", "(generated in development)", true,
        "32-byte key that encrypts staff TOTP secrets at rest (XChaCha20-Poly1305), as 64 hex characters or base64 (`openssl rand -hex 32`). Required in production; in development a random key is kept in the data folder. Losing it means every user re-enrols.";
    "VANTUS_MFA_REQUIRED_ROLES", "auth.mfa_required_roles", "owner,admin", false,
        "Comma-separated roles that must use a second factor; such a user who has none is sent to enrolment after the password. Empty (or `none`): no role must.";
    "VANTUS_REAUTH_WINDOW", "auth.reauth_window", "5m", false,
        "Enabling or disabling TOTP and regenerating recovery codes need a sign-in (or re-authentication) this recent; older sessions are asked for the password (and a code) first.";
    "VANTUS_RATE_LIMIT_LOGIN", "rate_limit.login", "10/5m", false,
        "Sign-in attempts allowed per client (IP, IPv6 /64) and period; more get 429 with Retry-After.";
    "VANTUS_RATE_LIMIT_LOGIN_ACCOUNT", "rate_limit.login_account", "10/15m", false,
        "Sign-in attempts allowed per account and period, from any client (slows a distributed guess).";
    "VANTUS_INVITATION_TTL", "auth.invitation_ttl", "7days", false,
        "How long an invitation link to the portal stays usable; it works once.";
    "VANTUS_PASSWORD_RESET_TTL", "auth.password_reset_ttl", "1h", false,
        "How long a password-reset link stays usable; it works once, and a newer one voids it.";
    "VANTUS_RATE_LIMIT_PASSWORD_RESET", "rate_limit.password_reset", "5/15m", false,
        "Password-reset requests allowed per client (IP, IPv6 /64) and period; more get 429 with Retry-After.";
    "VANTUS_RATE_LIMIT_PASSWORD_RESET_ACCOUNT", "rate_limit.password_reset_account", "3/1h", false,
        "Password-reset requests allowed per address and period, from any client (bounds the emails one inbox gets).";
    "SMTP_URL", "mail.smtp_url", "(none)", true,
        "Where lead notifications are sent: `smtp://user:password@host:587?tls=required` (STARTTLS), `smtps://user:password@host:465` (TLS from the start) or `smtp://host:25` (plain, a local relay only). Or use SMTP_HOST and the settings after it. Unset: emails wait in the outbox and doctor warns.";
    "SMTP_HOST", "mail.smtp_host", "(none)", false,
        "Instead of SMTP_URL: the SMTP server's host name.";
    "SMTP_PORT", "mail.smtp_port", "(587; 465 with SMTP_TLS=tls; 25 with none)", false,
        "With SMTP_HOST: the port.";
    "SMTP_TLS", "mail.smtp_tls", "starttls", false,
        "With SMTP_HOST: `starttls` (required, never falls back to plain text), `tls` (implicit TLS, SMTPS) or `none` (a local relay only).";
    "SMTP_USERNAME", "mail.smtp_username", "(none)", false,
        "With SMTP_HOST: the user name to log in with (needs SMTP_PASSWORD).";
    "SMTP_PASSWORD", "mail.smtp_password", "(none)", true,
        "With SMTP_HOST: the password (needs SMTP_USERNAME).";
    "SMTP_FROM", "mail.from", "(none)", false,
        "Sender of notifications, e.g. `Vantus <noreply@example.com>`. Required when SMTP is configured.";
    "VANTUS_WEBHOOK_URLS", "webhooks.urls", "(none)", false,
        "Comma-separated http(s) endpoints sent a signed `lead.created` event (Standard Webhooks) for each new lead.";
    "VANTUS_WEBHOOK_SECRET", "webhooks.secret", "(none)", true,
        "Signing secret for webhooks, `whsec_` + base64 of 24 to 64 random bytes (`echo whsec_$(openssl rand -base64 32)`). Required with VANTUS_WEBHOOK_URLS.";
    "VANTUS_OUTBOX_MAX_ATTEMPTS", "outbox.max_attempts", "10", false,
        "Delivery attempts per email or webhook call before it is dead-lettered (`vantus outbox retry --dead` requeues).";
    "VANTUS_OUTBOX_RETRY_BASE", "outbox.retry_base", "30s", false,
        "Wait before the first retry; it doubles with each failure (with random jitter) up to VANTUS_OUTBOX_RETRY_MAX.";
    "VANTUS_OUTBOX_RETRY_MAX", "outbox.retry_max", "1h", false,
        "Longest wait between two attempts.";
    "VANTUS_OUTBOX_LEASE", "outbox.lease", "60s", false,
        "How long a replica owns the messages it is delivering (at least 30s); a replica that dies frees them after this.";
    "VANTUS_BACKUP_TO", "backup.to", "(none)", false,
        "Where backups go: a local folder or s3://bucket/prefix. Used by `vantus backup` and the schedule.";
    "VANTUS_BACKUP_SCHEDULE", "backup.schedule", "(none)", false,
        "Cron expression for backups made by `serve`, e.g. `0 3 * * *` (UTC). One replica runs each.";
    "VANTUS_BACKUP_RUNNER", "backup.runner", "serve", false,
        "`serve` runs VANTUS_BACKUP_SCHEDULE itself; `external` when a CronJob or systemd timer runs `vantus backup` on that schedule (doctor still checks freshness against it).";
    "VANTUS_BACKUP_KEEP_DAILY", "backup.keep_daily", "7", false,
        "Scheduled backups keep the newest backup of each of this many days.";
    "VANTUS_BACKUP_KEEP_WEEKLY", "backup.keep_weekly", "4", false,
        "...and of each of this many ISO weeks.";
    "VANTUS_BACKUP_PASSPHRASE", "backup.passphrase", "(none)", true,
        "Encrypts backups at rest (age, scrypt). Needed again to restore: keep it outside the backups.";
    "VANTUS_RESTORE_DRILL_SCHEDULE", "backup.drill_schedule", "(none)", false,
        "Cron expression for restore drills: the newest backup is restored into a scratch database and checked.";
    "S3_ENDPOINT", "s3.endpoint", "(AWS)", false,
        "S3-compatible endpoint URL, e.g. http://seaweedfs:8333. Unset means AWS S3.";
    "S3_REGION", "s3.region", "us-east-1", false,
        "Region for S3 request signing.";
    "S3_BUCKET", "s3.bucket", "(none)", false,
        "Bucket for media; backups name theirs in VANTUS_BACKUP_TO.";
    "S3_ACCESS_KEY_ID", "s3.access_key_id", "(none)", true,
        "S3 access key id.";
    "S3_SECRET_ACCESS_KEY", "s3.secret_access_key", "(none)", true,
        "S3 secret access key.";
    "VANTUS_MEDIA_MAX_BYTES", "media.max_bytes", "20MiB", false,
        "Largest media upload (B, KiB, MiB; at most 256MiB). Larger ones are refused with 413.";
    "VANTUS_MEDIA_MAX_PIXELS", "media.max_pixels", "50000000", false,
        "Most pixels (width × height) an uploaded image may have; larger ones (and decompression bombs) are refused before decoding.";
    "REDIS_URL", "redis.url", "(none)", true,
        "redis://host:6379/0 for rate limits shared across replicas.";
    "VANTUS_METRICS_LISTEN", "metrics.listen", "(none)", false,
        "Serve Prometheus /metrics on this separate address, e.g. 0.0.0.0:9090.";
    "VANTUS_METRICS_TOKEN", "metrics.token", "(none)", true,
        "Instead (or as well): serve /metrics on the main port to requests bearing this token.";
    "OTEL_EXPORTER_OTLP_ENDPOINT", "telemetry.otlp_endpoint", "(none)", false,
        "OTLP/HTTP collector base URL, e.g. http://otel-collector:4318; traces are exported there.";
    "OTEL_SERVICE_NAME", "telemetry.service_name", "vantus", false,
        "Service name on exported traces.";
    "SENTRY_DSN", "telemetry.sentry_dsn", "(none)", true,
        "Report errors and panics to Sentry (no personal data is sent).";
    "VANTUS_LOG_SHIPPING", "log.shipping", "(none)", false,
        "Names the pipeline that ships stdout logs off the host (e.g. vector, fluent-bit, journald); doctor checks it is declared.";
    "RUST_LOG", "log.filter", "info", false,
        "Log filter, e.g. `info` or `vantus=debug,sqlx=warn`.";
    "VANTUS_LOG_FORMAT", "log.format", "json", false,
        "`json` (one object per line on stdout) or `pretty` for a terminal.";
}

/// The registered setting called `env`. Reading a setting that is not in [`SETTINGS`] is a
/// programming error (it could not be documented nor read from the TOML file), so it panics:
/// every configuration load reads every setting, so any test finds it.
pub(super) fn setting(env: &str) -> &'static Setting {
    SETTINGS
        .iter()
        .find(|s| s.env == env)
        .unwrap_or_else(|| panic!("{env} is read but not registered in config::SETTINGS"))
}

/// The default of a setting that has a real one (not a placeholder such as "(none)").
pub(super) fn default_of(env: &str) -> &'static str {
    let default = setting(env).default;
    assert!(
        !default.starts_with('(') && !default.contains('<'),
        "{env} has no literal default ({default}); read it as an optional setting"
    );
    default
}
