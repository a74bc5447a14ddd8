//! Keeps this process's caches (rendered pages, `tenant_hosts`) in step with the database.
//!
//! Changes are pushed ([`crate::store::notify`]): a publish on any replica retires cached pages
//! everywhere within milliseconds. Polling happens only while the push channel is down
//! (every [`FALLBACK_POLL`]); on SQLite a slow re-check ([`SQLITE_RECHECK`]) also catches
//! writes by another process on the same file (a CLI), which in-process notices cannot see.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::Site;
use crate::store::Engine;
use crate::store::notify::Notice;

/// How often the content generation is read while change notices are down.
pub const FALLBACK_POLL: Duration = Duration::from_secs(1);
/// How often SQLite is re-read for changes made outside this process.
pub const SQLITE_RECHECK: Duration = Duration::from_secs(5);
/// A SQLite notice is sent just before the commit is visible (see `notify`): the generation is
/// read again after these pauses until it moves.
const SETTLE: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_millis(5),
    Duration::from_millis(20),
    Duration::from_millis(75),
    Duration::from_millis(250),
];

/// Follows change notices until `stop`, and polls while they are down.
pub async fn follow(site: Site, stop: CancellationToken) {
    let notices = site.store.notices().clone();
    let mut received = notices.subscribe();
    let sqlite = site.store.engine() == Engine::Sqlite;
    loop {
        // Decided per wait: the listener sends a resync when it drops, which ends the wait.
        let pause = match (notices.push_is_up(), sqlite) {
            (false, _) => Some(FALLBACK_POLL),
            (true, true) => Some(SQLITE_RECHECK),
            (true, false) => None,
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            notice = received.recv() => match notice {
                Ok(Notice::Content { tenant, generation }) => {
                    if tenant.is_some_and(|t| t != site.site.id()) {
                        continue;
                    }
                    match generation {
                        Some(g) => {
                            if site.pages.observe_generation(g) {
                                tracing::debug!(generation = g, "content changed; cached pages retired");
                            }
                        }
                        None => {
                            tokio::spawn(settle(site.clone()));
                        }
                    }
                }
                Ok(Notice::Hosts) => site.hosts.invalidate().await,
                Ok(Notice::Resync) | Err(RecvError::Lagged(_)) => {
                    site.hosts.invalidate().await;
                    refresh(&site).await;
                }
                Err(RecvError::Closed) => return,
            },
            _ = tokio::time::sleep(pause.unwrap_or(Duration::MAX)), if pause.is_some() => {
                if !notices.push_is_up() {
                    metrics::counter!("vantus_invalidation_fallback_polls_total").increment(1);
                } else {
                    // SQLite's re-check: hosts another process changed show up too.
                    site.hosts.invalidate().await;
                }
                refresh(&site).await;
            }
        }
    }
}

/// Reads the generation until it moves (a SQLite notice may arrive just before its commit).
async fn settle(site: Site) {
    for pause in SETTLE {
        tokio::time::sleep(pause).await;
        if matches!(site.refresh_generation().await, Ok(true)) {
            return;
        }
    }
}

async fn refresh(site: &Site) {
    match site.refresh_generation().await {
        Ok(true) => tracing::debug!("content changed; cached pages retired"),
        Ok(false) => {}
        Err(e) => tracing::debug!(error = %e, "content generation check failed"),
    }
}
