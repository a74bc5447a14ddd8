//! HTTP caching: per-route Cache-Control, strong ETags with 304s, pre-compressed variants.
//!
//! A [`CachedPage`] is compressed once (brotli and gzip) and hashed once when it is made;
//! serving it afterwards is a header copy. The site keeps them in its page cache
//! (`site::cache`), per content generation.

use std::io::Write;

use axum::body::Body;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// How long, and by whom, a response may be cached. Every route picks one; a response that
/// names none is `no-store` (see [`default_no_store`]), so forgetting is safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachePolicy {
    /// HTML pages: shared caches may keep them but must revalidate (cheap: ETag → 304), so
    /// an editor's change is visible on the next request.
    Page,
    /// Feeds and sitemaps: an hour is fresh enough for crawlers and readers.
    Feed,
    /// robots.txt: changes with releases only.
    Daily,
    /// Fingerprinted static assets: the URL changes when the bytes do.
    Immutable,
    /// Health, errors, anything personal.
    NoStore,
}

impl CachePolicy {
    pub fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            CachePolicy::Page => "public, no-cache",
            CachePolicy::Feed => "public, max-age=3600",
            CachePolicy::Daily => "public, max-age=86400",
            CachePolicy::Immutable => "public, max-age=31536000, immutable",
            CachePolicy::NoStore => "no-store",
        })
    }
}

/// A response that names no Cache-Control gets `no-store`.
pub fn default_no_store(res: &mut Response) {
    if !res.headers().contains_key(CACHE_CONTROL) {
        res.headers_mut()
            .insert(CACHE_CONTROL, CachePolicy::NoStore.header());
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

/// Picks the best encoding the client accepts (brotli, then gzip), honouring `q=0`.
pub fn negotiate(headers: &HeaderMap) -> Encoding {
    let Some(accept) = headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()) else {
        return Encoding::Identity;
    };
    let (mut br, mut gzip, mut star) = (None, None, None);
    for part in accept.split(',') {
        let mut pieces = part.split(';');
        let name = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = pieces
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match name.as_str() {
            "br" => br = Some(q),
            "gzip" | "x-gzip" => gzip = Some(q),
            "*" => star = Some(q),
            _ => {}
        }
    }
    let br = br.or(star).unwrap_or(0.0);
    let gzip = gzip.or(star).unwrap_or(0.0);
    if br > 0.0 && br >= gzip {
        Encoding::Brotli
    } else if gzip > 0.0 {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

/// Whether `If-None-Match` names the entity whose opaque tag is `hash` (weak comparison, as
/// RFC 9110 requires for this header; any of our encodings' tags match).
pub fn if_none_match_hits(headers: &HeaderMap, hash: &str) -> bool {
    let Some(value) = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value.split(',').map(str::trim).any(|tag| {
        if tag == "*" {
            return true;
        }
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        let Some(opaque) = tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
            return false;
        };
        let base = opaque
            .strip_suffix("-br")
            .or_else(|| opaque.strip_suffix("-gz"))
            .unwrap_or(opaque);
        base == hash
    })
}

/// First 16 bytes of SHA-256, hex: collision-safe for cache validation, short in headers.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..16])
}

/// A response body with its precomputed variants and validators.
#[derive(Debug)]
pub struct CachedPage {
    pub generation: i64,
    status: StatusCode,
    content_type: HeaderValue,
    policy: CachePolicy,
    hash: String,
    identity: (Bytes, HeaderValue),
    gzip: Option<(Bytes, HeaderValue)>,
    brotli: Option<(Bytes, HeaderValue)>,
}

/// Below this size compression costs more than it saves.
const MIN_COMPRESS_BYTES: usize = 256;

impl CachedPage {
    pub fn new(
        generation: i64,
        status: StatusCode,
        content_type: &'static str,
        policy: CachePolicy,
        body: impl Into<Bytes>,
    ) -> Self {
        let body: Bytes = body.into();
        let hash = content_hash(&body);
        let tag = |suffix: &str| {
            HeaderValue::from_str(&format!("\"{hash}{suffix}\"")).expect("hex is a valid header")
        };
        let compressible = body.len() >= MIN_COMPRESS_BYTES;
        let gzip = compressible.then(|| (gzip(&body), tag("-gz")));
        let brotli = compressible.then(|| (brotli(&body), tag("-br")));
        Self {
            generation,
            status,
            content_type: HeaderValue::from_static(content_type),
            policy,
            identity: (body, tag("")),
            gzip,
            brotli,
            hash,
        }
    }

    pub fn body(&self) -> &Bytes {
        &self.identity.0
    }

    /// Builds the response for this request: the negotiated encoding, or a 304.
    pub fn respond(&self, request_headers: &HeaderMap) -> Response {
        let encoding = negotiate(request_headers);
        let (body, etag, content_encoding) = match encoding {
            Encoding::Brotli if self.brotli.is_some() => {
                let (b, t) = self.brotli.as_ref().expect("checked");
                (b, t, Some("br"))
            }
            Encoding::Brotli | Encoding::Gzip if self.gzip.is_some() => {
                let (b, t) = self.gzip.as_ref().expect("checked");
                (b, t, Some("gzip"))
            }
            _ => (&self.identity.0, &self.identity.1, None),
        };
        let not_modified =
            self.status == StatusCode::OK && if_none_match_hits(request_headers, &self.hash);
        let mut res = if not_modified {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut r = Response::new(Body::from(body.clone()));
            *r.status_mut() = self.status;
            r
        };
        let h = res.headers_mut();
        // Room for these, the security headers and the request id without regrowing.
        h.reserve(16);
        h.insert(CONTENT_TYPE, self.content_type.clone());
        h.insert(ETAG, etag.clone());
        h.insert(CACHE_CONTROL, self.policy.header());
        h.insert(VARY, HeaderValue::from_static("accept-encoding"));
        if let (Some(enc), false) = (content_encoding, not_modified) {
            h.insert(CONTENT_ENCODING, HeaderValue::from_static(enc));
        }
        res
    }
}

fn gzip(data: &[u8]) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("writing to memory cannot fail");
    enc.finish().expect("writing to memory cannot fail").into()
}

fn brotli(data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() / 3);
    let params = brotli::enc::BrotliEncoderParams {
        quality: 9,
        lgwin: brotli_window_bits(data.len()),
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &data[..], &mut out, &params)
        .expect("compressing from memory cannot fail");
    out.into()
}

/// The smallest brotli window that holds the whole body. A larger one compresses no better
/// but makes the encoder allocate (and glibc keep) megabytes per concurrent compression.
fn brotli_window_bits(len: usize) -> i32 {
    const MIN_BITS: u32 = 10; // BROTLI_MIN_WINDOW_BITS
    const MAX_BITS: u32 = 22; // the default, enough for any page we render
    // The window holds 2^bits - 16 bytes.
    let needed = (len + 16).next_power_of_two().trailing_zeros();
    needed.clamp(MIN_BITS, MAX_BITS) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn negotiation_prefers_brotli_and_respects_q0() {
        for (accept, expected) in [
            ("gzip, deflate, br", Encoding::Brotli),
            ("gzip", Encoding::Gzip),
            ("br;q=0, gzip", Encoding::Gzip),
            ("identity", Encoding::Identity),
            ("*", Encoding::Brotli),
            (";;;q=x,,", Encoding::Identity),
        ] {
            assert_eq!(
                negotiate(&headers(&[("accept-encoding", accept)])),
                expected,
                "{accept}"
            );
        }
        assert_eq!(negotiate(&HeaderMap::new()), Encoding::Identity);
    }

    #[test]
    fn etag_matching_is_weak_and_covers_all_variants() {
        let h = "0123abcd";
        assert!(if_none_match_hits(
            &headers(&[("if-none-match", "\"0123abcd\"")]),
            h
        ));
        assert!(if_none_match_hits(
            &headers(&[("if-none-match", "W/\"0123abcd-br\"")]),
            h
        ));
        assert!(if_none_match_hits(
            &headers(&[("if-none-match", "\"x\", \"0123abcd-gz\"")]),
            h
        ));
        assert!(if_none_match_hits(&headers(&[("if-none-match", "*")]), h));
        assert!(!if_none_match_hits(
            &headers(&[("if-none-match", "0123abcd")]),
            h
        ));
        assert!(!if_none_match_hits(
            &headers(&[("if-none-match", "\"other\"")]),
            h
        ));
    }

    #[test]
    fn cached_page_variants_round_trip() {
        let html = "<p>hello</p>".repeat(100);
        let page = CachedPage::new(
            1,
            StatusCode::OK,
            "text/html; charset=utf-8",
            CachePolicy::Page,
            html.clone(),
        );
        let res = page.respond(&headers(&[("accept-encoding", "gzip")]));
        assert_eq!(res.headers()[CONTENT_ENCODING], "gzip");
        let etag = res.headers()[ETAG].to_str().unwrap().to_owned();
        let (gz, _) = page.gzip.as_ref().unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out)
            .unwrap();
        assert_eq!(out, html);
        let mut h = headers(&[("accept-encoding", "gzip")]);
        h.insert(IF_NONE_MATCH, HeaderValue::from_str(&etag).unwrap());
        assert_eq!(page.respond(&h).status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn brotli_window_fits_the_body_and_stays_in_range() {
        assert_eq!(brotli_window_bits(0), 10);
        assert_eq!(brotli_window_bits(20_000), 15); // 32 KiB holds 20 kB
        assert_eq!(brotli_window_bits(32_752), 15); // exactly 2^15 - 16
        assert_eq!(brotli_window_bits(32_753), 16);
        assert_eq!(brotli_window_bits(100 << 20), 22);
        let body = "a studio for high-trust products. ".repeat(600);
        let page = CachedPage::new(
            1,
            StatusCode::OK,
            "text/plain",
            CachePolicy::Page,
            body.clone(),
        );
        let mut out = Vec::new();
        let (compressed, _) = page.brotli.as_ref().expect("compressible");
        brotli::BrotliDecompress(&mut &compressed[..], &mut out).expect("valid brotli");
        assert_eq!(out, body.as_bytes());
    }
}
