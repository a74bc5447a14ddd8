//! The client's IP address, for rate limits and the audit log.
//!
//! Behind a load balancer the TCP peer is the balancer, and the client is in
//! `X-Forwarded-For`. That header is only believed when the peer is a trusted proxy
//! (`VANTUS_TRUSTED_PROXIES`), and then it is read **from the right**: each trusted hop appends
//! the address it received the request from, so the rightmost entry that is not itself a
//! trusted proxy is the first address no trusted party can vouch beyond. The leftmost entry is
//! whatever the client chose to send, and believing it would let anyone pick their own
//! address (the mistake of "smart" extractors that take the first entry).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::errors::AppError;
use crate::config::Cidr;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(pub Arc<[Cidr]>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

/// The client's address as far as trusted proxies vouch for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Resolves the client address from the TCP peer and the `X-Forwarded-For` headers.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    if !trusted.trusts(peer) {
        return peer;
    }
    // Several X-Forwarded-For headers form one list, in order. Without one, the standard
    // `Forwarded: for=…` (RFC 7239) says the same.
    let mut hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if hops.is_empty() {
        hops = headers
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(forwarded_for)
            .collect();
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) if trusted.trusts(ip) => client = ip,
            Some(ip) => return ip,
            // Garbage where an address should be: nothing to its left can be trusted.
            None => return client,
        }
    }
    client
}

/// The `for=` node of one `Forwarded` element, unquoted (`""` when it has none, which stops
/// the walk like any unreadable hop).
fn forwarded_for(element: &str) -> &str {
    element
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
        .map(|(_, v)| v.trim().trim_matches('"'))
        .unwrap_or("")
}

/// An address as proxies write it: `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443`,
/// `203.0.113.7:51234`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

impl<S> FromRequestParts<S> for ClientIp
where
    TrustedProxies: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Every connection is served by `http::serve`, which records the peer; a request
        // without one is a wiring mistake, not the client's, and must not pass unlimited.
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Err(AppError::Internal(
                "the connection's peer address is unknown".into(),
            ));
        };
        let trusted = TrustedProxies::from_ref(state);
        Ok(ClientIp(resolve(
            peer.ip().to_canonical(),
            &parts.headers,
            &trusted,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn trusted(cidrs: &[&str]) -> TrustedProxies {
        TrustedProxies(cidrs.iter().map(|c| Cidr::parse(c).unwrap()).collect())
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    /// (peer, X-Forwarded-For headers, trusted ranges, the client address expected).
    const CASES: &[(&str, &[&str], &[&str], &str)] = &[
        // An untrusted peer is the client, whatever it claims.
        ("203.0.113.9", &["1.2.3.4"], &["10.0.0.0/8"], "203.0.113.9"),
        ("10.1.1.1", &["1.2.3.4"], &[], "10.1.1.1"),
        // The client forged the leftmost entry; the edge proxy appended the real address.
        (
            "10.0.0.2",
            &["6.6.6.6, 198.51.100.20", "10.0.0.5"],
            &["10.0.0.0/8"],
            "198.51.100.20",
        ),
        (
            "10.0.0.2",
            &["[2001:db8::7]:443"],
            &["10.0.0.0/8"],
            "2001:db8::7",
        ),
        (
            "10.0.0.2",
            &["198.51.100.20:51234"],
            &["10.0.0.0/8"],
            "198.51.100.20",
        ),
        // Garbage, or only proxies: stop at the last trusted hop.
        (
            "10.0.0.2",
            &["1.2.3.4, bogus, 10.0.0.9"],
            &["10.0.0.0/8"],
            "10.0.0.9",
        ),
        ("10.0.0.2", &[], &["10.0.0.0/8"], "10.0.0.2"),
        // An IPv4 peer seen through an IPv6 socket is matched against IPv4 ranges.
        (
            "::ffff:10.0.0.2",
            &["192.0.2.1"],
            &["10.0.0.0/8"],
            "192.0.2.1",
        ),
    ];

    #[test]
    fn the_standard_forwarded_header_is_read_the_same_way() {
        let t = trusted(&["10.0.0.0/8"]);
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let forwarded = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.append("forwarded", HeaderValue::from_static(v));
            h
        };
        let h = forwarded(r#"for=6.6.6.6, for="[2001:db8::7]:443";proto=https, For=10.0.0.5"#);
        assert_eq!(
            resolve(peer, &h, &t),
            "2001:db8::7".parse::<IpAddr>().unwrap()
        );
        // An obfuscated node stops the walk at the last trusted hop.
        let h = forwarded("for=1.2.3.4, for=_hidden, for=10.0.0.5");
        assert_eq!(resolve(peer, &h, &t), "10.0.0.5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_client_is_the_rightmost_hop_no_trusted_proxy_vouches_beyond() {
        for (peer, headers, cidrs, expected) in CASES {
            let peer: IpAddr = peer.parse::<IpAddr>().unwrap().to_canonical();
            let got = resolve(peer, &xff(headers), &trusted(cidrs));
            assert_eq!(
                got,
                expected.parse::<IpAddr>().unwrap(),
                "{peer} {headers:?}"
            );
        }
    }
}
