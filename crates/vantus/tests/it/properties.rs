//! Property-based tests (proptest): rules that must hold for every input, not only for the
//! examples the other files pick. Each property names what it protects:
//!
//! * CSV exports: every cell comes back unchanged through an RFC 4180 reader, except that a
//!   cell a spreadsheet would run as a formula comes back behind one `'`; no cell is ever read
//!   back starting with a formula character.
//! * The audit chain: the canonical encoding a link hash covers is injective (two entries that
//!   differ in any field never share a hash, whatever commas, quotes or brackets they hold),
//!   and a link depends on its predecessor and its position.
//! * Idempotency keys: accepted exactly when they are 1 to 255 visible ASCII characters
//!   (surrounding spaces trimmed); the same request always hashes the same, a different one
//!   differently; nothing panics.
//! * Tenant scope by host: normalising a `Host` header never panics, is idempotent, and yields
//!   lower case without a port, so one tenant cannot be reached under two spellings.
//! * Rate limits: the local limiter and the Redis limiter make the same decisions for the
//!   same sequence of requests, so a replica falling back to its local limiter neither
//!   loosens nor tightens a limit.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use uuid::Uuid;
use vantus::audit::chain::{EntryFields, link_hash};
use vantus::http::csv;
use vantus::http::rate_limit::{Backend, Decision, LimiterOptions, Quota, RateLimiter};
use vantus::leads::idempotency::IdempotencyKey;
use vantus::store::Timestamp;
use vantus::tenancy::normalize_host;

use crate::support::redis::RedisServer;

/// A minimal RFC 4180 reader for one record (the reference the export is checked against):
/// quoted fields may hold commas, doubled quotes and line breaks; the record ends in CRLF.
fn read_record(line: &str) -> Vec<String> {
    let body = line.strip_suffix("\r\n").expect("a record ends in CRLF");
    let mut cells = vec![String::new()];
    let mut chars = body.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        let cell = cells.last_mut().unwrap();
        match (quoted, c) {
            (false, '"') if cell.is_empty() => quoted = true,
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (false, ',') => cells.push(String::new()),
            (_, c) => cell.push(c),
        }
    }
    assert!(!quoted, "an unterminated quote in {line:?}");
    cells
}

fn is_formula_start(s: &str) -> bool {
    s.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// Cells built from the characters that matter to CSV and spreadsheets, plus any text.
fn cell_text() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(
            prop_oneof![
                Just('='),
                Just('+'),
                Just('-'),
                Just('@'),
                Just('\t'),
                Just('\r'),
                Just('\n'),
                Just(','),
                Just('"'),
                Just('\''),
                Just(' '),
                any::<char>(),
            ],
            0..12
        )
        .prop_map(|cs| cs.into_iter().collect()),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(Config { cases: 512, ..Config::default() })]

    #[test]
    fn csv_cells_round_trip_and_never_read_back_as_formulas(
        cells in proptest::collection::vec(cell_text(), 1..8)
    ) {
        let line = csv::record(cells.iter().map(String::as_str));
        let back = read_record(&line);
        prop_assert_eq!(back.len(), cells.len());
        for (original, read) in cells.iter().zip(&back) {
            if is_formula_start(original) {
                prop_assert_eq!(read, &format!("'{original}"));
            } else {
                prop_assert_eq!(read, original);
            }
            prop_assert!(!is_formula_start(read), "{:?} reads back as a formula", read);
        }
    }

    #[test]
    fn audit_links_differ_when_any_field_differs(
        a in entry_fields(), b in entry_fields(), seq in 1i64..1_000_000, prev in "[0-9a-f]{64}"
    ) {
        let (ea, eb) = (a.fields(), b.fields());
        let same = a == b;
        prop_assert_eq!(link_hash(&prev, seq, &ea) == link_hash(&prev, seq, &eb), same);
        // Position and predecessor are part of the link.
        prop_assert_ne!(link_hash(&prev, seq, &ea), link_hash(&prev, seq + 1, &ea));
        let other_prev = format!("{:0>64}", "1");
        if prev != other_prev {
            prop_assert_ne!(link_hash(&prev, seq, &ea), link_hash(&other_prev, seq, &ea));
        }
    }

    #[test]
    fn idempotency_keys_are_accepted_exactly_when_valid(
        raw in prop_oneof![any::<String>(), "[ -~]{0,300}", "[!-~]{1,255}"],
        request in proptest::collection::vec(any::<u8>(), 0..64),
        other in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let trimmed = raw.trim();
        let valid = !trimmed.is_empty() && trimmed.len() <= 255 && trimmed.bytes().all(|b| b.is_ascii_graphic());
        match IdempotencyKey::new(&raw, &request) {
            Ok(key) => {
                prop_assert!(valid, "{:?} was accepted", raw);
                prop_assert_eq!(key.as_str(), trimmed);
                let again = IdempotencyKey::new(&raw, &request).unwrap();
                prop_assert_eq!(key.request_hash(), again.request_hash());
                let different = IdempotencyKey::new(&raw, &other).unwrap();
                prop_assert_eq!(key.request_hash() == different.request_hash(), request == other);
            }
            Err(message) => {
                prop_assert!(!valid, "{:?} was refused", raw);
                prop_assert!(message.contains("visible ASCII"), "{}", message);
            }
        }
    }

    #[test]
    fn host_normalisation_is_idempotent_and_canonical(
        raw in prop_oneof![any::<String>(), "[A-Za-z0-9.-]{1,20}(:[0-9]{1,5})?", "\\[[0-9a-f:]{2,12}\\](:[0-9]{1,5})?"]
    ) {
        if let Some(host) = normalize_host(&raw) {
            prop_assert_eq!(normalize_host(&host), Some(host.clone()));
            prop_assert_eq!(host.to_ascii_lowercase(), host.clone());
            prop_assert!(!host.ends_with('.'));
            if !host.starts_with('[') {
                prop_assert!(host.rsplit_once(':').is_none_or(|(_, p)| !p.bytes().all(|b| b.is_ascii_digit())),
                    "{:?} kept its port", host);
            }
            // The same host with a port and in capitals is the same tenant host.
            if !host.starts_with('[') && !host.contains(':') {
                let spelled = format!("{}:8080", host.to_ascii_uppercase());
                prop_assert_eq!(normalize_host(&spelled), Some(host));
            }
        }
    }
}

/// Owned fields of an audit entry, so proptest can generate and compare them.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    id: Uuid,
    tenant_id: Option<Uuid>,
    actor: String,
    action: String,
    resource: String,
    detail: String,
    ip: Option<String>,
    request_id: Option<String>,
    created_at: Timestamp,
}

impl Entry {
    fn fields(&self) -> EntryFields<'_> {
        EntryFields {
            id: self.id,
            tenant_id: self.tenant_id,
            actor: &self.actor,
            action: &self.action,
            resource: &self.resource,
            detail: &self.detail,
            ip: self.ip.as_deref(),
            request_id: self.request_id.as_deref(),
            created_at: self.created_at,
        }
    }
}

/// Entries from small alphabets, so that two generated entries are often nearly equal and
/// fields often hold the separators a naive encoding would confuse.
fn entry_fields() -> impl Strategy<Value = Entry> {
    let text = || "[ab,\"\\[\\]:]{0,4}";
    let uuid = || (0u128..4).prop_map(Uuid::from_u128);
    (
        uuid(),
        proptest::option::of(uuid()),
        text(),
        text(),
        text(),
        text(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        0i64..3,
    )
        .prop_map(
            |(id, tenant_id, actor, action, resource, detail, ip, request_id, secs)| Entry {
                id,
                tenant_id,
                actor,
                action,
                resource,
                detail,
                ip,
                request_id,
                created_at: Timestamp::from_unix_micros((1_700_000_000 + secs) * 1_000_000)
                    .unwrap(),
            },
        )
}

/// The local and the Redis limiter decide alike, request by request. Each case uses its own
/// route class, so cases do not share allowances.
#[test]
fn local_and_redis_limiters_make_the_same_decisions() {
    let redis = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let options = || LimiterOptions {
        redis_timeout: Duration::from_secs(2),
        retry_redis_after: Duration::from_secs(60),
        max_local_keys: 1000,
    };
    let (local, shared) = runtime.block_on(async {
        (
            RateLimiter::new(None, options()).unwrap(),
            RateLimiter::new(Some(&redis.url()), options()).unwrap(),
        )
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let strategy = (1u32..8, proptest::collection::vec(0usize..3, 1..40));
    runner
        .run(&strategy, |(count, clients)| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let class = format!("property-{n}");
            let quota = Quota::new(count, Duration::from_secs(3600));
            let decisions = runtime.block_on(async {
                let mut out = Vec::new();
                for c in &clients {
                    let client = format!("198.51.100.{c}");
                    let a = local.check(&class, &client, quota).await;
                    let b = shared.check(&class, &client, quota).await;
                    out.push((a == Decision::Allow, b == Decision::Allow));
                }
                out
            });
            for (i, (a, b)) in decisions.iter().enumerate() {
                prop_assert_eq!(
                    a,
                    b,
                    "request {} of {:?} with a quota of {}",
                    i,
                    clients,
                    count
                );
            }
            // And both agree with the rule itself: the first `count` of each client pass.
            let mut seen = [0u32; 3];
            for (c, (a, _)) in clients.iter().zip(&decisions) {
                seen[*c] += 1;
                prop_assert_eq!(*a, seen[*c] <= count);
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(
        shared.backend(),
        Backend::Shared,
        "the Redis limiter never fell back"
    );
}
