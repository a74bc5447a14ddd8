//! Lead capture: who is told about a new lead, the spam defence, and the rate limits of the
//! public doors (the contact form and the API).

use std::time::Duration;

use super::source::Source;

#[derive(Clone, Debug)]
pub struct LeadsConfig {
    /// Recipients of new-lead emails; empty means the tenant's contact email.
    pub notify: Vec<String>,
    pub min_fill_time: Duration,
    pub max_form_age: Duration,
    pub max_links: usize,
    pub blocked_domains: Vec<String>,
    pub spam_retention: Duration,
    pub form_rate: RateSetting,
    pub api_rate: RateSetting,
}

/// `COUNT/PERIOD`, e.g. `10/10m`: at most COUNT requests per PERIOD per client, all of which
/// may come at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateSetting {
    pub count: u32,
    pub period: Duration,
}

impl RateSetting {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let bad = || format!("\"{raw}\" is not a rate such as 10/10m (requests per period)");
        let (count, period) = raw.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        if count == 0 {
            return Err("must allow at least 1 request".to_owned());
        }
        let period = humantime::parse_duration(period.trim()).map_err(|_| bad())?;
        if period.is_zero() || period > Duration::from_secs(24 * 3600) {
            return Err(format!(
                "\"{raw}\": the period must be longer than zero and at most a day"
            ));
        }
        Ok(Self { count, period })
    }
}

/// A bare `local@domain` check, enough to catch a typo in a setting; the form's own parser
/// is stricter, but config sits below the slices and cannot use it.
fn mailbox(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    match s.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c)) =>
        {
            Ok(s.to_owned())
        }
        _ => Err(format!(
            "\"{raw}\" is not an email address such as sales@example.com"
        )),
    }
}

impl LeadsConfig {
    pub(super) fn parse(src: &Source<'_>) -> Self {
        Self {
            notify: src.list("VANTUS_LEADS_NOTIFY", mailbox),
            min_fill_time: src.duration("VANTUS_FORM_MIN_FILL_TIME"),
            max_form_age: src.duration("VANTUS_FORM_MAX_AGE"),
            max_links: src.number("VANTUS_SPAM_MAX_LINKS", 0, 1000) as usize,
            blocked_domains: src.list("VANTUS_SPAM_BLOCKED_DOMAINS", |d| {
                let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
                if d.contains('.') && !d.contains(|c: char| c.is_whitespace() || c == '@') {
                    Ok(d)
                } else {
                    Err(format!("\"{d}\" is not a domain such as example.com"))
                }
            }),
            spam_retention: src.duration("VANTUS_SPAM_RETENTION"),
            form_rate: src.or_default("VANTUS_RATE_LIMIT_FORMS", RateSetting::parse),
            api_rate: src.or_default("VANTUS_RATE_LIMIT_API", RateSetting::parse),
        }
    }
}
