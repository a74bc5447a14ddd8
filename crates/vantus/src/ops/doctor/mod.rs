//! `vantus doctor`: the production-readiness audit, executable.
//!
//! Each check looks at the live configuration and environment and reports a severity
//! (critical, high, medium, ok), what it found, why it matters, and how to fix it. The command
//! exits non-zero when anything is critical, so deploy pipelines can gate on it.
//!
//! Doctor also runs on an invalid configuration, when its report is needed most: every
//! configuration problem is a critical finding, and each check runs unless a setting it needs
//! is broken. One module per area; [`run`] only decides what runs, in which order.

mod backups;
mod config;
mod database;
mod disk;
mod observability;
mod outbox;
mod security;
mod services;

use serde::Serialize;

use crate::config::{Config, ConfigErrors};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One finding, built as `Finding::high(check, what was found).impact(..).fix(..)`.
#[derive(Debug, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub severity: Severity,
    pub finding: String,
    pub impact: String,
    pub fix: String,
}

impl Finding {
    pub fn new(check: &'static str, severity: Severity, found: impl Into<String>) -> Self {
        Self {
            check,
            severity,
            finding: found.into(),
            impact: String::new(),
            fix: String::new(),
        }
    }

    pub fn ok(check: &'static str, found: impl Into<String>) -> Self {
        Self::new(check, Severity::Ok, found)
    }

    pub fn medium(check: &'static str, found: impl Into<String>) -> Self {
        Self::new(check, Severity::Medium, found)
    }

    pub fn high(check: &'static str, found: impl Into<String>) -> Self {
        Self::new(check, Severity::High, found)
    }

    pub fn critical(check: &'static str, found: impl Into<String>) -> Self {
        Self::new(check, Severity::Critical, found)
    }

    /// Why it matters.
    pub fn impact(mut self, impact: impl Into<String>) -> Self {
        self.impact = impact.into();
        self
    }

    /// What to do about it.
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub status: Severity,
    pub environment: &'static str,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn has_critical(&self) -> bool {
        self.status == Severity::Critical
    }
}

/// A run in progress: the configuration, its problems, the findings so far, and which checks
/// were skipped because a setting they need is broken.
pub(crate) struct Doctor<'a> {
    config: &'a Config,
    problems: &'a ConfigErrors,
    findings: Vec<Finding>,
    /// Skipped checks, each with the broken settings that kept it from running.
    skipped: Vec<(&'static str, Vec<&'static str>)>,
}

impl Doctor<'_> {
    fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    fn ok(&mut self, check: &'static str, found: impl Into<String>) {
        self.push(Finding::ok(check, found));
    }

    fn production(&self) -> bool {
        self.config.is_production()
    }

    /// True when none of the settings `check` needs is broken; otherwise it is noted as
    /// skipped. A broken VANTUS_CONFIG file may hide any setting, so it stops every check.
    fn can_run(&mut self, check: &'static str, needs: &[&'static str]) -> bool {
        let file_broken = self.problems.concerns("VANTUS_CONFIG");
        let broken: Vec<&'static str> = needs
            .iter()
            .copied()
            .filter(|setting| self.problems.concerns(setting))
            .collect();
        if broken.is_empty() && !file_broken {
            return true;
        }
        self.skipped.push((check, broken));
        false
    }
}

/// Settings every check that reads `production` needs.
const ENV: &str = "VANTUS_ENV";

/// Runs every check that can run. Never fails: an unreachable dependency or a broken setting is
/// a finding, not an error. `problems` are the configuration's (see [`Config::diagnose`]).
pub async fn run(config: &Config, problems: &ConfigErrors) -> Report {
    let mut d = Doctor {
        config,
        problems,
        findings: Vec::new(),
        skipped: Vec::new(),
    };
    security::environment(&mut d);
    let db = database::check(&mut d).await;
    if let Some(db) = &db {
        backups::freshness(&mut d, db).await;
        outbox::backlog(&mut d, db).await;
    }
    database::replicas(&mut d).await;
    backups::location(&mut d).await;
    observability::check(&mut d);
    services::check(&mut d).await;
    outbox::mail(&mut d).await;
    outbox::webhooks(&mut d);
    security::trusted_proxies(&mut d);
    disk::check(&mut d);
    if let Some(db) = db {
        db.close().await;
    }

    let mut findings = config::findings(problems, &d.skipped);
    findings.append(&mut d.findings);
    let status = findings
        .iter()
        .map(|x| x.severity)
        .max()
        .unwrap_or(Severity::Ok);
    Report {
        status,
        environment: config.env.as_str(),
        findings,
    }
}

/// Prints the report for people.
pub fn print(report: &Report) {
    crate::say!("vantus doctor ({} mode)\n", report.environment);
    for f in &report.findings {
        crate::say!(
            "[{:<8}] {:<20} {}",
            f.severity.label().to_uppercase(),
            f.check,
            f.finding
        );
        if f.severity != Severity::Ok {
            if !f.impact.is_empty() {
                crate::say!("{:32}impact: {}", "", f.impact);
            }
            if !f.fix.is_empty() {
                crate::say!("{:32}fix:    {}", "", f.fix);
            }
        }
    }
    let count = |s| report.findings.iter().filter(|f| f.severity == s).count();
    crate::say!(
        "\n{} critical, {} high, {} medium, {} ok: overall {}",
        count(Severity::Critical),
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Ok),
        report.status.label()
    );
}
