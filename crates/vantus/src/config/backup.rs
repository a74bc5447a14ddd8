//! Backups (`VANTUS_BACKUP_*`, restore drills) and the S3 storage they and media may use.

use std::path::PathBuf;

use secrecy::SecretString;
use url::Url;

use super::ConfigError;
use super::source::Source;

/// Where backups are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackupLocation {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl BackupLocation {
    pub fn parse(setting: &'static str, raw: &str) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        if let Some(rest) = raw.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(ConfigError::new(
                    setting,
                    "an s3:// location needs a bucket, e.g. s3://backups/vantus",
                ));
            }
            return Ok(BackupLocation::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        if raw.contains("://") {
            return Err(ConfigError::new(
                setting,
                format!("\"{raw}\" is neither a local path nor an s3:// URL"),
            ));
        }
        if raw.is_empty() {
            return Err(ConfigError::new(setting, "must not be empty"));
        }
        Ok(BackupLocation::Local(PathBuf::from(raw)))
    }

    pub fn describe(&self) -> String {
        match self {
            BackupLocation::Local(p) => p.display().to_string(),
            BackupLocation::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            BackupLocation::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// A cron schedule with the text it was written as.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub expression: String,
    pub cron: cron::Schedule,
}

impl Schedule {
    /// Accepts the usual five fields (minute hour day month weekday) or six with seconds first.
    pub fn parse(setting: &'static str, raw: &str) -> Result<Self, ConfigError> {
        let expression = raw.trim().to_owned();
        let fields = expression.split_whitespace().count();
        let full = match fields {
            5 => {
                let parts: Vec<&str> = expression.split_whitespace().collect();
                let dow = standard_weekdays(parts[4]).map_err(|why| {
                    ConfigError::new(setting, format!("\"{expression}\": day of week {why}"))
                })?;
                format!(
                    "0 {} {} {} {} {dow}",
                    parts[0], parts[1], parts[2], parts[3]
                )
            }
            6 | 7 => expression.clone(),
            _ => {
                return Err(ConfigError::new(
                    setting,
                    format!(
                        "\"{expression}\" is not a cron expression (five fields: minute hour day month weekday, e.g. \"0 3 * * *\")"
                    ),
                ));
            }
        };
        let cron = full.parse::<cron::Schedule>().map_err(|e| {
            ConfigError::new(
                setting,
                format!("\"{expression}\" is not a valid cron expression: {e}"),
            )
        })?;
        Ok(Self { expression, cron })
    }
}

/// Translates a standard cron day-of-week field (0–7, Sunday = 0 or 7) into the numbering of
/// the `cron` crate (1–7, Sunday = 1). Names (MON, SUN-THU) and `*` pass through unchanged.
pub(super) fn standard_weekdays(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" || field.chars().any(|c| c.is_ascii_alphabetic()) {
        return Ok(field.to_owned());
    }
    let mut days = std::collections::BTreeSet::new();
    for part in field.split(',') {
        let (base, step) = match part.split_once('/') {
            Some((b, s)) => (
                b,
                s.parse::<u8>()
                    .map_err(|_| format!("has a bad step in \"{part}\""))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("has a zero step in \"{part}\""));
        }
        let (from, to) = match base {
            "*" => (0, 6),
            b => match b.split_once('-') {
                Some((a, z)) => (num(a)?, num(z)?),
                None if part.contains('/') => (num(b)?, 6),
                None => (num(b)?, num(b)?),
            },
        };
        if from > to {
            return Err(format!("has a backwards range \"{part}\""));
        }
        for d in (from..=to).step_by(step as usize) {
            days.insert(d % 7 + 1);
        }
    }
    fn num(s: &str) -> Result<u8, String> {
        match s.parse::<u8>() {
            Ok(n) if n <= 7 => Ok(n),
            _ => Err(format!("\"{s}\" is not 0–7 (Sunday is 0 or 7)")),
        }
    }
    Ok(days.iter().map(u8::to_string).collect::<Vec<_>>().join(","))
}

#[derive(Clone, Debug)]
pub struct BackupConfig {
    pub to: Option<BackupLocation>,
    pub schedule: Option<Schedule>,
    /// False when something outside `serve` (a CronJob, a systemd timer) runs the schedule.
    pub run_in_serve: bool,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub passphrase: Option<SecretString>,
    pub drill_schedule: Option<Schedule>,
}

#[derive(Clone, Debug, Default)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: Option<String>,
    pub access_key_id: Option<SecretString>,
    pub secret_access_key: Option<SecretString>,
}

impl BackupConfig {
    pub(super) fn parse(src: &Source<'_>) -> Self {
        let schedule = |name: &'static str| {
            src.optional(name, |raw| {
                Schedule::parse(name, raw).map_err(|e| e.problem)
            })
        };
        let backup = Self {
            to: src.optional("VANTUS_BACKUP_TO", |raw| {
                BackupLocation::parse("VANTUS_BACKUP_TO", raw).map_err(|e| e.problem)
            }),
            schedule: schedule("VANTUS_BACKUP_SCHEDULE"),
            run_in_serve: src.choice(
                "VANTUS_BACKUP_RUNNER",
                &[("serve", true), ("external", false)],
                "a runner",
                "serve or external",
            ),
            keep_daily: src.number("VANTUS_BACKUP_KEEP_DAILY", 0, 3650) as u32,
            keep_weekly: src.number("VANTUS_BACKUP_KEEP_WEEKLY", 0, 520) as u32,
            passphrase: src.optional("VANTUS_BACKUP_PASSPHRASE", |raw| {
                if raw.chars().count() < 12 {
                    return Err(
                        "is too short (at least 12 characters; a generated one is better)".into(),
                    );
                }
                Ok(SecretString::from(raw.to_owned()))
            }),
            drill_schedule: schedule("VANTUS_RESTORE_DRILL_SCHEDULE"),
        };
        if backup.schedule.is_some() && backup.to.is_none() && !src.is_broken("VANTUS_BACKUP_TO") {
            src.problem(
                "VANTUS_BACKUP_TO",
                "is required when VANTUS_BACKUP_SCHEDULE is set: say where scheduled backups go",
            );
        }
        backup
    }
}

impl S3Config {
    pub(super) fn parse(src: &Source<'_>) -> Self {
        Self {
            endpoint: src.optional("S3_ENDPOINT", |endpoint| match Url::parse(endpoint) {
                Ok(_) => Ok(endpoint.to_owned()),
                Err(_) => Err(format!("\"{endpoint}\" is not a URL")),
            }),
            region: src.or_default("S3_REGION", |raw| Ok(raw.to_owned())),
            bucket: src.raw("S3_BUCKET"),
            access_key_id: src.raw("S3_ACCESS_KEY_ID").map(SecretString::from),
            secret_access_key: src.raw("S3_SECRET_ACCESS_KEY").map(SecretString::from),
        }
    }
}
