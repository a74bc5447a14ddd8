//! Content management: how often scheduled publishes and unpublishes are looked for, and how
//! long a preview link works.

use std::time::Duration;

use super::Schedule;
use super::source::Source;

#[derive(Clone, Debug)]
pub struct ContentConfig {
    /// The `content-schedule` job's tick: a schedule runs at the first tick at or after its
    /// time, so this is how late it may be at most.
    pub schedule_tick: Schedule,
    pub schedule_tick_every: Duration,
    /// How long a signed preview link works after it was made.
    pub preview_ttl: Duration,
}

/// A tick that divides a minute or an hour evenly, as a cron schedule (ticks on the same
/// wall-clock instants on every replica, so their `job_runs` claims meet).
fn tick(raw: &str) -> Result<(Schedule, Duration), String> {
    let bad = || {
        format!(
            "\"{raw}\" must divide a minute or an hour evenly: 1s, 2s, 5s, 10s, 15s, 30s, 1m, 5m, 15m, 1h…"
        )
    };
    let d = humantime::parse_duration(raw.trim()).map_err(|_| bad())?;
    let s = d.as_secs();
    if d.subsec_nanos() != 0 || s == 0 {
        return Err(bad());
    }
    let expression = match s {
        s if s < 60 && 60 % s == 0 => format!("*/{s} * * * * *"),
        60 => "0 * * * * *".to_owned(),
        s if s % 60 == 0 && s < 3600 && 60 % (s / 60) == 0 => format!("0 */{} * * * *", s / 60),
        3600 => "0 0 * * * *".to_owned(),
        _ => return Err(bad()),
    };
    Schedule::parse("VANTUS_CONTENT_SCHEDULE_TICK", &expression)
        .map(|schedule| (schedule, d))
        .map_err(|e| e.problem)
}

impl ContentConfig {
    pub(super) fn parse(src: &Source<'_>) -> Self {
        let (schedule_tick, schedule_tick_every) =
            src.or_default("VANTUS_CONTENT_SCHEDULE_TICK", tick);
        Self {
            schedule_tick,
            schedule_tick_every,
            preview_ttl: src.duration("VANTUS_CONTENT_PREVIEW_TTL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tick;

    #[test]
    fn ticks_divide_a_minute_or_an_hour() {
        for (raw, expression) in [
            ("1s", "*/1 * * * * *"),
            ("30s", "*/30 * * * * *"),
            ("1m", "0 * * * * *"),
            ("5m", "0 */5 * * * *"),
            ("1h", "0 0 * * * *"),
        ] {
            assert_eq!(tick(raw).unwrap().0.expression, expression, "{raw}");
        }
        for bad in ["0s", "7s", "90s", "7m", "2h", "1.5s", "soon"] {
            assert!(tick(bad).is_err(), "{bad}");
        }
    }
}
