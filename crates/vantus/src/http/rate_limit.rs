//! Rate limits per client and route class that never fail open.
//!
//! The algorithm is GCRA (the generic cell rate algorithm, as in `redis-cell` and `governor`):
//! one stored number per key, the "theoretical arrival time", so a limit costs one small value
//! however many requests it sees, and bursts up to a quota's `burst` are allowed.
//!
//! * With `REDIS_URL` the state lives in Redis and is shared by every replica: one Lua script,
//!   atomic, timed by Redis' own clock (replicas' clocks may differ), loaded once by its SHA and
//!   reloaded when Redis answers `NOSCRIPT` (after a restart or `SCRIPT FLUSH`).
//! * When Redis is unset, down or slow (each call has a short deadline), the same algorithm runs
//!   in this process, over a bounded number of keys. It keeps limiting: a replica then allows
//!   at most its own share, never everything. Each switch between the two is logged once and
//!   counted in `vantus_rate_limit_fallbacks_total`; the current backend is a gauge and a
//!   readiness warning.
//!
//! Clients are keyed by IP address ([`super::client_ip`]), IPv6 grouped by /64 (one
//! household or server gets one /64, and walking a /64 must not multiply the limit). A request
//! whose client cannot be determined shares the one "unknown" key.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use redis::aio::MultiplexedConnection;

use super::client_ip::{self, TrustedProxies};
use super::errors::ErrorDetail;

/// How many requests a client may make: one every `interval` on average, up to `burst` at
/// once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub interval: Duration,
    pub burst: u32,
}

impl Quota {
    /// `count` requests per `period`, all of which may come at once.
    pub fn new(count: u32, period: Duration) -> Self {
        let count = count.max(1);
        Quota {
            interval: period / count,
            burst: count,
        }
    }

    fn interval_ms(&self) -> u64 {
        (self.interval.as_millis() as u64).max(1)
    }
}

/// The answer for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Over the limit; the next request would be allowed after this long.
    Deny {
        retry_after: Duration,
    },
}

/// Where the limiter keeps its state right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Redis, shared by every replica.
    Shared,
    /// This process only, because no Redis is configured.
    Local,
    /// This process only, because the configured Redis is down or slow.
    Fallback,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Shared => "redis",
            Backend::Local => "local",
            Backend::Fallback => "local-fallback",
        }
    }
}

/// Tuning that rarely needs changing; tests shorten the times.
#[derive(Clone, Copy, Debug)]
pub struct LimiterOptions {
    /// A Redis call slower than this counts as a failure (the request is limited locally).
    pub redis_timeout: Duration,
    /// After a failure, how long to stay local before trying Redis again.
    pub retry_redis_after: Duration,
    /// Most clients tracked locally; beyond it, new clients share one key.
    pub max_local_keys: usize,
}

impl Default for LimiterOptions {
    fn default() -> Self {
        LimiterOptions {
            redis_timeout: Duration::from_millis(100),
            retry_redis_after: Duration::from_secs(2),
            max_local_keys: 100_000,
        }
    }
}

/// The limiter every rate-limit layer shares. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter(Arc<Inner>);

struct Inner {
    redis: Option<Shared>,
    local: Mutex<LocalGcra>,
    options: LimiterOptions,
    /// 0 shared, 1 local, 2 fallback.
    backend: AtomicU8,
}

struct Shared {
    client: redis::Client,
    script: redis::Script,
    connection: Mutex<Option<MultiplexedConnection>>,
    /// Milliseconds since `ORIGIN` before which Redis is not tried again.
    retry_at_ms: AtomicU64,
}

/// The GCRA step in Redis: returns {allowed, retry_after_ms}. The stored value is the
/// theoretical arrival time in milliseconds of Redis' clock; it expires when it no longer
/// matters.
const GCRA_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return {1, 0}
"#;

static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn now_ms() -> u64 {
    ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl RateLimiter {
    /// A limiter on Redis when `redis_url` is given (it is connected lazily; an unreachable
    /// Redis means local limiting until it answers), else local only.
    pub fn new(
        redis_url: Option<&str>,
        options: LimiterOptions,
    ) -> Result<Self, redis::RedisError> {
        let redis = match redis_url {
            Some(url) => Some(Shared {
                client: redis::Client::open(url)?,
                script: redis::Script::new(GCRA_LUA),
                connection: Mutex::new(None),
                retry_at_ms: AtomicU64::new(0),
            }),
            None => None,
        };
        let backend = if redis.is_some() { 0 } else { 1 };
        Ok(RateLimiter(Arc::new(Inner {
            redis,
            local: Mutex::new(LocalGcra::new(options.max_local_keys)),
            options,
            backend: AtomicU8::new(backend),
        })))
    }

    pub fn backend(&self) -> Backend {
        match self.0.backend.load(Ordering::Relaxed) {
            0 => Backend::Shared,
            1 => Backend::Local,
            _ => Backend::Fallback,
        }
    }

    /// Counts one request of `client` against `quota` for the route class `class`.
    pub async fn check(&self, class: &str, client: &str, quota: Quota) -> Decision {
        let key = format!("vantus:rl:{class}:{client}");
        if let Some(shared) = &self.0.redis
            && now_ms() >= shared.retry_at_ms.load(Ordering::Relaxed)
        {
            match self.check_shared(shared, &key, quota).await {
                Ok(decision) => {
                    self.switch_to(Backend::Shared, None);
                    return decision;
                }
                Err(why) => {
                    shared.retry_at_ms.store(
                        now_ms() + self.0.options.retry_redis_after.as_millis() as u64,
                        Ordering::Relaxed,
                    );
                    if let Ok(mut c) = shared.connection.lock() {
                        *c = None;
                    }
                    self.switch_to(Backend::Fallback, Some(&why));
                }
            }
        }
        self.lock_local().check(&key, quota, Instant::now())
    }

    async fn check_shared(
        &self,
        shared: &Shared,
        key: &str,
        quota: Quota,
    ) -> Result<Decision, String> {
        let deadline = self.0.options.redis_timeout;
        let work = async {
            let cached = shared.connection.lock().ok().and_then(|c| c.clone());
            let mut conn = match cached {
                Some(c) => c,
                None => {
                    let c = shared
                        .client
                        .get_multiplexed_async_connection()
                        .await
                        .map_err(|e| e.to_string())?;
                    if let Ok(mut slot) = shared.connection.lock() {
                        *slot = Some(c.clone());
                    }
                    c
                }
            };
            let (allowed, retry_ms): (i64, i64) = shared
                .script
                .key(key)
                .arg(quota.interval_ms())
                .arg(quota.burst)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok(if allowed == 1 {
                Decision::Allow
            } else {
                Decision::Deny {
                    retry_after: Duration::from_millis(retry_ms.max(1) as u64),
                }
            })
        };
        match tokio::time::timeout(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", deadline.as_millis())),
        }
    }

    fn switch_to(&self, backend: Backend, why: Option<&str>) {
        let code = match backend {
            Backend::Shared => 0,
            Backend::Local => 1,
            Backend::Fallback => 2,
        };
        let previous = self.0.backend.swap(code, Ordering::Relaxed);
        if previous == code {
            return;
        }
        metrics::gauge!("vantus_rate_limit_backend", "backend" => "redis")
            .set(if backend == Backend::Shared { 1.0 } else { 0.0 });
        match backend {
            Backend::Fallback => {
                metrics::counter!("vantus_rate_limit_fallbacks_total").increment(1);
                tracing::warn!(
                    error = why.unwrap_or(""),
                    "rate limits: Redis unavailable, limiting in this process until it answers"
                );
            }
            _ => tracing::info!("rate limits: Redis answers again, limits are shared"),
        }
    }

    fn lock_local(&self) -> std::sync::MutexGuard<'_, LocalGcra> {
        self.0.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keys tracked in this process (for tests and the readiness report).
    pub fn local_keys(&self) -> usize {
        self.lock_local().tats.len()
    }
}

/// GCRA over a bounded map, for when there is no shared store.
struct LocalGcra {
    tats: HashMap<String, Instant>,
    max_keys: usize,
}

/// Where new clients go when the map is full of clients still being limited: together they
/// share one allowance, so a flood of addresses cannot buy unlimited requests.
const OVERFLOW_KEY: &str = "vantus:rl:overflow";

impl LocalGcra {
    fn new(max_keys: usize) -> Self {
        LocalGcra {
            tats: HashMap::new(),
            max_keys: max_keys.max(2),
        }
    }

    fn check(&mut self, key: &str, quota: Quota, now: Instant) -> Decision {
        let key = if self.tats.contains_key(key) || self.make_room(now) {
            key
        } else {
            OVERFLOW_KEY
        };
        let tat = self.tats.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat + quota.interval;
        let allow_at = new_tat
            .checked_sub(quota.interval * quota.burst)
            .unwrap_or(now);
        if now < allow_at {
            return Decision::Deny {
                retry_after: allow_at - now,
            };
        }
        self.tats.insert(key.to_owned(), new_tat);
        Decision::Allow
    }

    /// Frees a slot by forgetting clients whose allowance is whole again; false when every
    /// tracked client is still being limited. One slot is kept for the overflow key.
    fn make_room(&mut self, now: Instant) -> bool {
        let regular = |tats: &HashMap<String, Instant>| {
            tats.len() - usize::from(tats.contains_key(OVERFLOW_KEY))
        };
        if regular(&self.tats) < self.max_keys - 1 {
            return true;
        }
        self.tats.retain(|_, tat| *tat > now);
        regular(&self.tats) < self.max_keys - 1
    }
}

/// One route class's limit, applied as a layer:
/// `route_layer(from_fn_with_state(RouteLimit { .. }, rate_limit::limit))`.
#[derive(Clone)]
pub struct RouteLimit {
    pub limiter: RateLimiter,
    /// `forms`, `api`, `login`: each class has its own allowance per client.
    pub class: &'static str,
    pub quota: Quota,
    pub trusted: TrustedProxies,
}

/// Middleware: counts the request against its client's allowance; over it, 429 with
/// `Retry-After` (rendered as an HTML page or JSON by the error layer, like every error).
pub async fn limit(State(rule): State<RouteLimit>, req: Request<Body>, next: Next) -> Response {
    let client = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| client_ip::resolve(c.0.ip().to_canonical(), req.headers(), &rule.trusted));
    match rule
        .limiter
        .check(rule.class, &client_key(client), rule.quota)
        .await
    {
        Decision::Allow => next.run(req).await,
        Decision::Deny { retry_after } => too_many_requests(retry_after),
    }
}

pub fn too_many_requests(retry_after: Duration) -> Response {
    let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let mut res = StatusCode::TOO_MANY_REQUESTS.into_response();
    res.headers_mut().insert(
        "retry-after",
        HeaderValue::from_str(&seconds.to_string()).expect("digits are a valid header"),
    );
    res.extensions_mut().insert(ErrorDetail {
        title: "Too many requests".into(),
        message: format!(
            "Too many requests from your address. Please try again in {seconds} second{}.",
            if seconds == 1 { "" } else { "s" }
        ),
        field: None,
    });
    res
}

/// The key of a client: its IPv4 address, or its IPv6 /64.
pub fn client_key(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_one_per_interval() {
        let quota = Quota::new(3, Duration::from_secs(3));
        let mut g = LocalGcra::new(10);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(g.check("a", quota, t0), Decision::Allow);
        }
        let Decision::Deny { retry_after } = g.check("a", quota, t0) else {
            panic!("the fourth request at once is over the limit");
        };
        assert_eq!(retry_after, Duration::from_secs(1));
        assert_eq!(
            g.check("b", quota, t0),
            Decision::Allow,
            "keys are separate"
        );
        assert_eq!(
            g.check("a", quota, t0 + Duration::from_secs(1)),
            Decision::Allow
        );
        assert!(matches!(
            g.check("a", quota, t0 + Duration::from_secs(1)),
            Decision::Deny { .. }
        ));
    }

    #[test]
    fn a_full_map_limits_new_clients_together_instead_of_letting_them_through() {
        let quota = Quota::new(2, Duration::from_secs(60));
        let mut g = LocalGcra::new(4);
        let t0 = Instant::now();
        let mut allowed = 0;
        for i in 0..100 {
            if g.check(&format!("client-{i}"), quota, t0) == Decision::Allow {
                allowed += 1;
            }
        }
        assert!(g.tats.len() <= 4, "{} keys", g.tats.len());
        // A few clients got their own slot; all the others shared the overflow allowance.
        assert!(allowed <= 4 * 2, "{allowed} requests allowed");
        // Once allowances are whole again, slots are reused.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(g.check("client-new", quota, later), Decision::Allow);
    }

    #[test]
    fn ipv6_clients_are_grouped_by_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(Some(a)), client_key(Some(b)));
        assert_ne!(client_key(Some(a)), client_key(Some(c)));
        assert_eq!(
            client_key(Some("::ffff:192.0.2.7".parse().unwrap())),
            "192.0.2.7"
        );
        assert_eq!(client_key(None), "unknown");
    }
}
