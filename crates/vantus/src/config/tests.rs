//! Unit tests of the whole load: defaults, every kind of bad value, files.

use secrecy::ExposeSecret;

use super::backup::standard_weekdays;
use super::*;

fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The settings named by the problems of loading `pairs`, in order.
fn problem_settings(pairs: &[(&str, &str)]) -> (Vec<&'static str>, ConfigErrors) {
    let errors = Config::load(&env_of(pairs), &Overrides::default()).unwrap_err();
    (errors.iter().map(|e| e.setting).collect(), errors)
}

/// Loads `pairs`; on failure, the first problem (these tests each make one).
fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::load(&env_of(pairs), &Overrides::default()).map_err(|errors| {
        errors
            .0
            .into_iter()
            .next()
            .expect("a failed load has a problem")
    })
}

const STRONG: &str = "4f1c9a7e2b6d8035c1e9f47a2d6b8c03";

#[test]
fn defaults_are_embedded_development() {
    let c = load(&[]).unwrap();
    assert_eq!(c.env, Environment::Development);
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8080/");
    assert!(
        matches!(c.database.url, DatabaseUrl::Sqlite { ref path } if path.ends_with("var/vantus.db"))
    );
    assert!(matches!(c.secret, SecretSource::GeneratedInDataDir));
    assert_eq!(c.http.body_limit, 64 * 1024);
}

#[test]
fn durations_too_long_to_be_deadlines_are_refused() {
    // Once a panic at start-up: `Instant::now() + timeout` overflowed.
    let e = load(&[("DATABASE_CONNECT_TIMEOUT", "584542046090y")]).unwrap_err();
    assert_eq!(e.setting, "DATABASE_CONNECT_TIMEOUT");
    assert!(e.problem.contains("at most 365 days"), "{}", e.problem);
    assert!(load(&[("DATABASE_CONNECT_TIMEOUT", "300d")]).is_ok());
}

#[test]
fn a_public_url_with_credentials_is_refused_without_echoing_them() {
    let e = load(&[("VANTUS_PUBLIC_URL", "https://admin:hunter2hunter2@x.test/")]).unwrap_err();
    assert_eq!(e.setting, "VANTUS_PUBLIC_URL");
    assert!(!e.problem.contains("hunter2"), "{}", e.problem);
    assert!(load(&[("VANTUS_PUBLIC_URL", "https://admin@x.test/")]).is_err());
}

#[test]
fn errors_never_echo_what_a_setting_file_holds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("listen");
    std::fs::write(&file, "root:$6$secret-hash:19000:0:99999:7:::\n").unwrap();
    let e = load(&[("VANTUS_LISTEN_FILE", file.to_str().unwrap())]).unwrap_err();
    assert_eq!(e.setting, "VANTUS_LISTEN");
    assert!(!e.problem.contains("secret-hash"), "{}", e.problem);
    assert!(e.problem.contains("VANTUS_LISTEN_FILE"), "{}", e.problem);
    // A file far larger than any value is refused unread.
    std::fs::write(&file, vec![b'a'; 200 * 1024]).unwrap();
    let e = load(&[("VANTUS_LISTEN_FILE", file.to_str().unwrap())]).unwrap_err();
    assert!(e.problem.contains("larger than 64 KiB"), "{}", e.problem);
}

#[test]
fn production_without_secret_names_the_variable() {
    let e = load(&[
        ("VANTUS_ENV", "production"),
        ("VANTUS_PUBLIC_URL", "https://x.test"),
    ])
    .unwrap_err();
    assert_eq!(e.setting, "VANTUS_SECRET_KEY");
}

#[test]
fn production_rejects_weak_secret_and_missing_public_url() {
    let e = load(&[
        ("VANTUS_ENV", "production"),
        ("VANTUS_PUBLIC_URL", "https://x.test"),
        ("VANTUS_SECRET_KEY", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    ])
    .unwrap_err();
    assert_eq!(e.setting, "VANTUS_SECRET_KEY");
    assert!(e.problem.contains("predictable"), "{e}");
    let e = load(&[
        ("VANTUS_ENV", "production"),
        ("VANTUS_SECRET_KEY", STRONG),
        ("VANTUS_MFA_KEY", MFA_KEY),
    ])
    .unwrap_err();
    assert_eq!(e.setting, "VANTUS_PUBLIC_URL");
    let ok = load(&[
        ("VANTUS_ENV", "production"),
        ("VANTUS_SECRET_KEY", STRONG),
        ("VANTUS_MFA_KEY", MFA_KEY),
        ("VANTUS_PUBLIC_URL", "https://vantus.example.com"),
    ]);
    assert!(ok.is_ok());
}

#[test]
fn database_url_errors_never_echo_the_password() {
    let e = load(&[("DATABASE_URL", "mysql://u:hunter2@h/db")]).unwrap_err();
    assert_eq!(e.setting, "DATABASE_URL");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = load(&[("DATABASE_URL", "not a url hunter2")]).unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let ok = load(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]).unwrap();
    assert!(!format!("{ok:?}").contains("hunter2"));
    assert_eq!(ok.database.url.redacted(), "postgres://u:***@h/db");
}

#[test]
fn replicas_need_postgres() {
    let e = load(&[("DATABASE_REPLICA_URLS", "postgres://h/db")]).unwrap_err();
    assert_eq!(e.setting, "DATABASE_REPLICA_URLS");
    let c = load(&[
        ("DATABASE_URL", "postgres://p/db"),
        (
            "DATABASE_REPLICA_URLS",
            "postgres://r1/db, postgres://r2/db",
        ),
    ])
    .unwrap();
    assert_eq!(c.database.replica_urls.len(), 2);
}

#[test]
fn malformed_values_name_their_setting() {
    for (k, v) in [
        ("VANTUS_LISTEN", "localhost"),
        ("VANTUS_ENV", "staging"),
        ("VANTUS_REQUEST_TIMEOUT", "soon"),
        ("VANTUS_BODY_LIMIT", "big"),
        ("DATABASE_MAX_CONNECTIONS", "0"),
        ("VANTUS_LOG_FORMAT", "xml"),
        ("VANTUS_SITE_TENANT", "Not A Slug"),
        ("VANTUS_PUBLIC_URL", "ftp://x"),
        ("VANTUS_TRUSTED_PROXIES", "10.0.0.0/99"),
        ("VANTUS_BACKUP_SCHEDULE", "every night"),
        ("VANTUS_BACKUP_TO", "ftp://host/x"),
        ("VANTUS_BACKUP_PASSPHRASE", "short"),
        ("VANTUS_METRICS_LISTEN", "9090"),
        ("SENTRY_DSN", "not-a-dsn"),
        ("REDIS_URL", "localhost:6379"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector"),
    ] {
        let e = load(&[(k, v)]).unwrap_err();
        assert_eq!(e.setting, k, "{e}");
    }
}

#[test]
fn file_variants_and_toml_file_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{STRONG}\n")).unwrap();
    let toml_file = dir.path().join("vantus.toml");
    std::fs::write(
        &toml_file,
        "listen = \"0.0.0.0:9000\"\n[http]\nbody_limit = \"1MiB\"\n",
    )
    .unwrap();
    let c = load(&[
        ("VANTUS_SECRET_KEY_FILE", key_file.to_str().unwrap()),
        ("VANTUS_CONFIG", toml_file.to_str().unwrap()),
        ("VANTUS_BODY_LIMIT", "2MiB"),
    ])
    .unwrap();
    assert!(matches!(c.secret, SecretSource::Configured(ref s) if s.expose_secret() == STRONG));
    assert_eq!(c.listen.port(), 9000);
    assert_eq!(c.public_url.as_str(), "http://127.0.0.1:9000/");
    assert_eq!(c.http.body_limit, 2 * 1024 * 1024, "env wins over the file");

    std::fs::write(&toml_file, "lisen = \"x\"\n").unwrap();
    let e = load(&[("VANTUS_CONFIG", toml_file.to_str().unwrap())]).unwrap_err();
    assert!(e.problem.contains("unknown setting \"lisen\""), "{e}");
}

#[test]
fn cidrs_and_schedules() {
    let net = Cidr::parse("10.1.0.0/16").unwrap();
    assert!(net.contains("10.1.200.3".parse().unwrap()));
    assert!(!net.contains("10.2.0.1".parse().unwrap()));
    assert!(Cidr::parse("::/0").unwrap().is_everything());
    assert!(
        Cidr::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap())
    );
    assert!(Schedule::parse("X", "0 3 * * *").is_ok());
    assert!(Schedule::parse("X", "*/2 * * * * *").is_ok());
    assert_eq!(standard_weekdays("0").unwrap(), "1", "Sunday");
    assert_eq!(standard_weekdays("7").unwrap(), "1", "Sunday too");
    assert_eq!(standard_weekdays("1-5").unwrap(), "2,3,4,5,6", "weekdays");
    assert_eq!(
        standard_weekdays("5-7").unwrap(),
        "1,6,7",
        "Friday to Sunday"
    );
    assert!(standard_weekdays("8").is_err());
    let sunday = Schedule::parse("X", "30 4 * * 0").unwrap();
    let next = sunday.cron.upcoming(chrono::Utc).next().unwrap();
    assert_eq!(chrono::Datelike::weekday(&next), chrono::Weekday::Sun);
    let e = load(&[("VANTUS_BACKUP_SCHEDULE", "0 3 * * *")]).unwrap_err();
    assert_eq!(
        e.setting, "VANTUS_BACKUP_TO",
        "a schedule needs a destination"
    );
    let c = load(&[("VANTUS_BACKUP_TO", "s3://bucket/nightly/")]).unwrap();
    assert_eq!(
        c.backup.to,
        Some(BackupLocation::S3 {
            bucket: "bucket".into(),
            prefix: "nightly".into()
        })
    );
}

#[test]
fn byte_sizes() {
    assert_eq!(parse_byte_size("64KiB"), Some(65536));
    assert_eq!(parse_byte_size("10 MB"), Some(10_000_000));
    assert_eq!(parse_byte_size("12"), Some(12));
    assert_eq!(parse_byte_size("12 parsecs"), None);
    assert_eq!(format_byte_size(65536), "64 KiB");
}

#[test]
#[should_panic(expected = "VANTUS_NOT_A_SETTING is read but not registered")]
fn reading_an_unregistered_setting_fails_loudly() {
    // Once, a setting missing from SETTINGS could not be read from the TOML file, silently.
    let env = HashMap::new();
    let src = source::Source::new(&env, None);
    let _ = src.raw("VANTUS_NOT_A_SETTING");
}

#[test]
fn every_registered_setting_is_read_and_every_default_parses() {
    let env = HashMap::new();
    let src = source::Source::new(&env, None);
    let _ = Config::from_source(&src, &Overrides::default());
    let read = src.settings_read();
    for s in SETTINGS.iter().filter(|s| s.env != "VANTUS_CONFIG") {
        assert!(
            read.contains(s.env),
            "{} is registered but never read",
            s.env
        );
    }
    assert!(src.into_problems().is_empty(), "the defaults are valid");
}

#[test]
fn every_problem_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let toml_file = dir.path().join("vantus.toml");
    std::fs::write(&toml_file, "lisen = \"x\"\n[htp]\nbody_limit = \"1MiB\"\n").unwrap();
    let (settings, errors) = problem_settings(&[
        ("VANTUS_CONFIG", toml_file.to_str().unwrap()),
        ("VANTUS_ENV", "production"),
        ("VANTUS_SECRET_KEY", STRONG),
        ("VANTUS_MFA_KEY", MFA_KEY),
        ("VANTUS_BODY_LIMIT", "big"),
        ("VANTUS_REQUEST_TIMEOUT", "soon"),
        ("VANTUS_LOG_FORMAT", "xml"),
    ]);
    assert_eq!(
        settings,
        [
            "VANTUS_CONFIG",
            "VANTUS_CONFIG",
            "VANTUS_PUBLIC_URL",
            "VANTUS_REQUEST_TIMEOUT",
            "VANTUS_BODY_LIMIT",
            "VANTUS_LOG_FORMAT",
        ],
        "{errors}"
    );
    assert_eq!(
        errors.to_string().lines().count(),
        6,
        "one line each: {errors}"
    );
    assert!(
        errors
            .to_string()
            .contains("unknown setting \"htp.body_limit\""),
        "{errors}"
    );
}

#[test]
fn a_problem_is_reported_once_not_again_by_what_depends_on_it() {
    // An unreadable key file in production is one problem, not also "is required".
    let (settings, errors) = problem_settings(&[
        ("VANTUS_ENV", "production"),
        ("VANTUS_PUBLIC_URL", "https://x.test"),
        ("VANTUS_SECRET_KEY_FILE", "/nonexistent/secret"),
        (
            "VANTUS_MFA_KEY",
            "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
        ),
        ("DATABASE_URL", "mysql://h/db"),
        ("DATABASE_REPLICA_URLS", "postgres://r/db"),
        ("VANTUS_BACKUP_SCHEDULE", "0 3 * * *"),
        ("VANTUS_BACKUP_TO", "ftp://x/y"),
    ]);
    assert_eq!(
        settings,
        ["VANTUS_SECRET_KEY", "DATABASE_URL", "VANTUS_BACKUP_TO"],
        "{errors}"
    );
}

#[test]
fn diagnose_falls_back_to_defaults_for_broken_settings() {
    let (config, errors) = Config::diagnose(
        &env_of(&[
            ("VANTUS_BODY_LIMIT", "big"),
            ("VANTUS_LISTEN", "0.0.0.0:9000"),
        ]),
        &Overrides::default(),
    );
    assert!(
        errors.concerns("VANTUS_BODY_LIMIT") && errors.0.len() == 1,
        "{errors}"
    );
    assert_eq!(config.http.body_limit, 64 * 1024, "the default stands in");
    assert_eq!(config.listen.port(), 9000, "good settings are kept");
}

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[test]
fn smtp_urls_give_host_port_tls_and_credentials() {
    let c = load(&[
        (
            "SMTP_URL",
            "smtp://ops%40x.test:p%2Fss@mail.x.test?tls=required",
        ),
        ("SMTP_FROM", "Vantus <noreply@x.test>"),
    ])
    .unwrap();
    let smtp = c.mail.smtp.as_ref().unwrap();
    assert_eq!(
        (smtp.host.as_str(), smtp.port, smtp.tls),
        ("mail.x.test", 587, SmtpTls::StartTls)
    );
    assert_eq!(smtp.username.as_deref(), Some("ops@x.test"));
    assert_eq!(smtp.password.as_ref().unwrap().expose_secret(), "p/ss");
    assert!(c.mail.is_configured());
    assert!(
        !format!("{c:?}").contains("p/ss"),
        "Debug hides the password"
    );

    let c = load(&[
        ("SMTP_URL", "smtps://mail.x.test"),
        ("SMTP_FROM", "n@x.test"),
    ])
    .unwrap();
    let smtp = c.mail.smtp.unwrap();
    assert_eq!((smtp.port, smtp.tls), (465, SmtpTls::Implicit));
    let c = load(&[
        ("SMTP_URL", "smtp://127.0.0.1:2525"),
        ("SMTP_FROM", "n@x.test"),
    ])
    .unwrap();
    let smtp = c.mail.smtp.unwrap();
    assert_eq!(
        (smtp.port, smtp.tls, smtp.username),
        (2525, SmtpTls::None, None)
    );

    let c = load(&[
        ("SMTP_HOST", "mail.x.test"),
        ("SMTP_TLS", "tls"),
        ("SMTP_USERNAME", "ops"),
        ("SMTP_PASSWORD", "secret"),
        ("SMTP_FROM", "n@x.test"),
    ])
    .unwrap();
    let smtp = c.mail.smtp.unwrap();
    assert_eq!((smtp.port, smtp.tls), (465, SmtpTls::Implicit));
    assert!(load(&[]).unwrap().mail.smtp.is_none(), "no SMTP by default");
}

#[test]
fn smtp_mistakes_name_the_setting_and_never_the_password() {
    for (pairs, setting) in [
        (
            &[
                ("SMTP_URL", "smtp://u:hunter2@h?tls=opportunistic"),
                ("SMTP_FROM", "n@x.test"),
            ][..],
            "SMTP_URL",
        ),
        (
            &[
                ("SMTP_URL", "imap://u:hunter2@h"),
                ("SMTP_FROM", "n@x.test"),
            ],
            "SMTP_URL",
        ),
        (
            &[("SMTP_URL", "smtp://u:hunter2@"), ("SMTP_FROM", "n@x.test")],
            "SMTP_URL",
        ),
        (&[("SMTP_URL", "smtp://u:hunter2@h")], "SMTP_FROM"),
        (&[("SMTP_HOST", "h")], "SMTP_FROM"),
        (
            &[("SMTP_URL", "smtp://h"), ("SMTP_FROM", "not a mailbox")],
            "SMTP_FROM",
        ),
        (
            &[
                ("SMTP_URL", "smtp://h"),
                ("SMTP_HOST", "h"),
                ("SMTP_FROM", "n@x.test"),
            ],
            "SMTP_HOST",
        ),
        (
            &[
                ("SMTP_URL", "smtp://h"),
                ("SMTP_PASSWORD", "hunter2"),
                ("SMTP_FROM", "n@x.test"),
            ],
            "SMTP_PASSWORD",
        ),
        (
            &[
                ("SMTP_HOST", "h"),
                ("SMTP_USERNAME", "u"),
                ("SMTP_FROM", "n@x.test"),
            ],
            "SMTP_PASSWORD",
        ),
        (
            &[("SMTP_USERNAME", "u"), ("SMTP_PASSWORD", "hunter2")],
            "SMTP_HOST",
        ),
        (
            &[
                ("SMTP_HOST", "h"),
                ("SMTP_PORT", "0"),
                ("SMTP_FROM", "n@x.test"),
            ],
            "SMTP_PORT",
        ),
        (
            &[
                ("SMTP_HOST", "h"),
                ("SMTP_TLS", "maybe"),
                ("SMTP_FROM", "n@x.test"),
            ],
            "SMTP_TLS",
        ),
    ] {
        let (settings, errors) = problem_settings(pairs);
        assert_eq!(settings, [setting], "{pairs:?}: {errors}");
        assert!(!errors.to_string().contains("hunter2"), "{errors}");
    }
}

#[test]
fn webhooks_need_a_standard_webhooks_secret() {
    let c = load(&[
        (
            "VANTUS_WEBHOOK_URLS",
            "https://hooks.x.test/vantus, http://10.0.0.5:8080/in",
        ),
        ("VANTUS_WEBHOOK_SECRET", WHSEC),
    ])
    .unwrap();
    assert_eq!(c.webhooks.urls.len(), 2);
    assert_eq!(c.webhooks.secret_bytes().unwrap().len(), 24);
    assert!(
        !format!("{c:?}").contains("MfKQ9r8"),
        "Debug hides the secret"
    );

    let e = load(&[("VANTUS_WEBHOOK_URLS", "https://hooks.x.test/")]).unwrap_err();
    assert_eq!(e.setting, "VANTUS_WEBHOOK_SECRET");
    for bad in [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_not*base64",
        "whsec_c2hvcnQ=",
    ] {
        let e = load(&[("VANTUS_WEBHOOK_SECRET", bad)]).unwrap_err();
        assert_eq!(e.setting, "VANTUS_WEBHOOK_SECRET");
        assert!(!e.problem.contains(bad), "{e}");
    }
    for bad in ["ftp://x.test/", "https://user:tok3n@x.test/", "not a url"] {
        let (settings, errors) = problem_settings(&[
            ("VANTUS_WEBHOOK_URLS", bad),
            ("VANTUS_WEBHOOK_SECRET", WHSEC),
        ]);
        assert_eq!(settings, ["VANTUS_WEBHOOK_URLS"], "{errors}");
        assert!(!errors.to_string().contains("tok3n"), "{errors}");
    }
}

#[test]
fn outbox_retry_settings() {
    let c = load(&[]).unwrap();
    assert_eq!(c.outbox.max_attempts, 10);
    assert_eq!(c.outbox.retry_base, std::time::Duration::from_secs(30));
    assert_eq!(c.outbox.retry_max, std::time::Duration::from_secs(3600));
    assert_eq!(c.outbox.lease, std::time::Duration::from_secs(60));
    let e = load(&[("VANTUS_OUTBOX_RETRY_BASE", "2h")]).unwrap_err();
    assert_eq!(e.setting, "VANTUS_OUTBOX_RETRY_MAX", "{e}");
    let e = load(&[("VANTUS_OUTBOX_LEASE", "5s")]).unwrap_err();
    assert_eq!(e.setting, "VANTUS_OUTBOX_LEASE", "{e}");
    let e = load(&[("VANTUS_OUTBOX_MAX_ATTEMPTS", "0")]).unwrap_err();
    assert_eq!(e.setting, "VANTUS_OUTBOX_MAX_ATTEMPTS", "{e}");
}

const MFA_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[test]
fn production_needs_an_mfa_key_of_32_bytes_in_hex_or_base64() {
    let e = load(&[
        ("VANTUS_ENV", "production"),
        ("VANTUS_SECRET_KEY", STRONG),
        ("VANTUS_PUBLIC_URL", "https://vantus.example.com"),
    ])
    .unwrap_err();
    assert_eq!(e.setting, "VANTUS_MFA_KEY");
    assert!(e.problem.contains("required in production"), "{e}");
    for bad in ["short", "00ff", "zz".repeat(32).as_str(), "AAAA"] {
        let e = load(&[("VANTUS_MFA_KEY", bad)]).unwrap_err();
        assert_eq!(e.setting, "VANTUS_MFA_KEY");
        assert!(!e.problem.contains(bad), "never echoed: {e}");
    }
    let hex = super::parse_mfa_key(MFA_KEY).unwrap();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, hex);
    assert_eq!(super::parse_mfa_key(&b64).unwrap(), hex);
    let dev = load(&[]).unwrap();
    assert!(matches!(
        dev.auth.mfa_key,
        super::MfaKeySource::GeneratedInDataDir
    ));
}

#[test]
fn mfa_required_roles_default_to_owner_and_admin_and_name_unknown_roles() {
    assert_eq!(
        load(&[]).unwrap().auth.mfa_required_roles,
        ["owner", "admin"]
    );
    let none = load(&[("VANTUS_MFA_REQUIRED_ROLES", "")]).unwrap();
    assert!(none.auth.mfa_required_roles.is_empty());
    let some = load(&[("VANTUS_MFA_REQUIRED_ROLES", "Owner, sales")]).unwrap();
    assert_eq!(some.auth.mfa_required_roles, ["owner", "sales"]);
    let e = load(&[("VANTUS_MFA_REQUIRED_ROLES", "owner,root")]).unwrap_err();
    assert_eq!(e.setting, "VANTUS_MFA_REQUIRED_ROLES");
    assert!(e.problem.contains("\"root\" is not a role"), "{e}");
    let w = load(&[("VANTUS_REAUTH_WINDOW", "1s")]).unwrap();
    assert_eq!(w.auth.reauth_window, std::time::Duration::from_secs(1));
}
