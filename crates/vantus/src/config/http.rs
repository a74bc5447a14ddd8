//! The HTTP server's limits and timeouts, and which proxies are trusted.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::source::Source;

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub request_timeout: Duration,
    pub drain_timeout: Duration,
    /// On SIGTERM, serving goes on this long with readiness already failing (a lame duck).
    pub shutdown_delay: Duration,
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
    pub body_limit: usize,
    pub trusted_proxies: Vec<Cidr>,
}

/// An address range such as `10.0.0.0/8` or `::1/128`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let a = s.parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// `0.0.0.0/0` or `::/0`: every address.
    pub fn is_everything(&self) -> bool {
        self.prefix == 0
    }
}

impl HttpConfig {
    pub(super) fn parse(src: &Source<'_>) -> Self {
        Self {
            request_timeout: src.duration("VANTUS_REQUEST_TIMEOUT"),
            drain_timeout: src.duration("VANTUS_DRAIN_TIMEOUT"),
            shutdown_delay: src.delay("VANTUS_SHUTDOWN_DELAY"),
            header_read_timeout: src.duration("VANTUS_HEADER_READ_TIMEOUT"),
            keep_alive_timeout: src.duration("VANTUS_KEEP_ALIVE_TIMEOUT"),
            max_connections: src.number("VANTUS_MAX_CONNECTIONS", 1, 1_000_000) as usize,
            body_limit: src.size("VANTUS_BODY_LIMIT"),
            trusted_proxies: src.list("VANTUS_TRUSTED_PROXIES", |s| {
                if s == "*" {
                    return Ok(Cidr {
                        addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                        prefix: 0,
                    });
                }
                Cidr::parse(s)
                    .ok_or_else(|| format!("\"{s}\" is not an address range such as 10.0.0.0/8"))
            }),
        }
    }
}
