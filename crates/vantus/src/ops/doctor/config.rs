//! Configuration problems as findings: each is critical, because nothing else starts with it.

use super::Finding;
use crate::config::ConfigErrors;

pub(super) fn findings(
    problems: &ConfigErrors,
    skipped: &[(&'static str, Vec<&'static str>)],
) -> Vec<Finding> {
    problems
        .iter()
        .map(|problem| {
            // A broken VANTUS_CONFIG stops every check; other settings stop those needing them.
            let stopped: Vec<&str> = skipped
                .iter()
                .filter(|(_, broken)| {
                    problem.setting == "VANTUS_CONFIG" || broken.contains(&problem.setting)
                })
                .map(|(check, _)| *check)
                .collect();
            let mut impact = "`vantus serve` and the other commands refuse to start until it is fixed.".to_owned();
            if !stopped.is_empty() {
                impact.push_str(&format!(" Not checked because of it: {}.", stopped.join(", ")));
            }
            Finding::critical("config", problem.to_string())
                .impact(impact)
                .fix(format!(
                    "Correct {}; `vantus doctor --help` and the README's configuration table describe every setting.",
                    problem.setting
                ))
        })
        .collect()
}
