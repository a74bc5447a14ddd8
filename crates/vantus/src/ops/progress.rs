//! Progress for long operations: a bar on a terminal, periodic JSON log lines otherwise (so a
//! backup run by cron or Kubernetes still tells its story in the logs).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a non-terminal run logs its progress.
const LOG_EVERY: Duration = Duration::from_secs(2);

pub struct Progress {
    operation: &'static str,
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
    last_log: Instant,
    stage: String,
}

impl Progress {
    /// `total` is the expected number of rows (0 when unknown). The bar is drawn only when
    /// stderr is a terminal and `interactive` is true (commands, not scheduled jobs).
    pub fn new(operation: &'static str, total: u64, interactive: bool) -> Self {
        let bar = (interactive && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:32}] {pos}/{len} rows {msg} ({elapsed}, ~{eta} left)",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_prefix(operation);
            bar
        });
        Self {
            operation,
            bar,
            total,
            done: 0,
            last_log: Instant::now(),
            stage: String::new(),
        }
    }

    /// Names what is being worked on now (a table, "media", "verifying").
    pub fn stage(&mut self, stage: &str) {
        self.stage = stage.to_owned();
        match &self.bar {
            Some(bar) => bar.set_message(stage.to_owned()),
            // At most one line per LOG_EVERY: a backup of many small tables would otherwise
            // log a line per table.
            None if self.last_log.elapsed() >= LOG_EVERY => {
                self.last_log = Instant::now();
                tracing::info!(
                    operation = self.operation,
                    stage,
                    done = self.done,
                    total = self.total,
                    "progress"
                );
            }
            None => {}
        }
    }

    pub fn add(&mut self, rows: u64) {
        self.done += rows;
        match &self.bar {
            Some(bar) => bar.inc(rows),
            None if self.last_log.elapsed() >= LOG_EVERY => {
                self.last_log = Instant::now();
                tracing::info!(
                    operation = self.operation,
                    stage = %self.stage,
                    done = self.done,
                    total = self.total,
                    "progress"
                );
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
