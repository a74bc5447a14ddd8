//! CSV for spreadsheets that may open it: RFC 4180 quoting, and cells that a spreadsheet
//! would run as a formula neutralised.
//!
//! A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula (or
//! becomes one) in Excel, LibreOffice and Google Sheets: `=HYPERLINK(…)` in a lead's message
//! or an audit entry's resource would run when a colleague opens the export. Such a cell gets
//! a leading `'`, which spreadsheets show as text and do not evaluate (OWASP's advice). Every
//! export (the audit log, later leads) writes its rows with [`record`].

use std::borrow::Cow;
use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;

/// Whether a spreadsheet would treat `value` as a formula.
fn is_formula(value: &str) -> bool {
    value
        .bytes()
        .next()
        .is_some_and(|b| matches!(b, b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r'))
}

/// One cell: neutralised if it would be a formula, then quoted if it holds a comma, a quote,
/// a line break or surrounding spaces.
pub fn cell(value: &str) -> Cow<'_, str> {
    let value: Cow<'_, str> = if is_formula(value) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    };
    let needs_quotes =
        value.contains([',', '"', '\n', '\r']) || value.starts_with(' ') || value.ends_with(' ');
    if needs_quotes {
        Cow::Owned(format!("\"{}\"", value.replace('"', "\"\"")))
    } else {
        value
    }
}

/// One line: the cells, comma-separated, ending in CRLF (RFC 4180).
pub fn record<'a>(cells: impl IntoIterator<Item = &'a str>) -> String {
    let mut line = cells.into_iter().map(cell).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// One page of a [`streamed`] export: its lines, and where the next page starts (`None`: the
/// page was the last).
pub struct Page<K> {
    pub text: String,
    pub next: Option<K>,
}

impl<K> Page<K> {
    /// `rows` turned into lines by `line`; there is a next page, after the last row's key,
    /// only when the page is full (`rows.len() == size`).
    pub fn of<R>(
        rows: &[R],
        size: i64,
        line: impl Fn(&R) -> String,
        key: impl Fn(&R) -> K,
    ) -> Self {
        Self {
            text: rows.iter().map(line).collect(),
            next: (rows.len() as i64 >= size)
                .then(|| rows.last().map(key))
                .flatten(),
        }
    }
}

/// A download of `file` streamed page by page, never held in memory: `head` (a CSV header
/// line) first, then the page `fetch(None)` reads, then `fetch(Some(next))` for as long as a
/// page names a next one. A database error mid-way ends the body early, which the client
/// sees as a broken download rather than a short file that looks complete.
pub fn streamed<K, F, Fut>(
    content_type: &'static str,
    file: &'static str,
    head: Option<String>,
    fetch: F,
) -> Response
where
    K: Send + 'static,
    F: Fn(Option<K>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Page<K>, sqlx::Error>> + Send + 'static,
{
    let fetch = std::sync::Arc::new(fetch);
    // `Some(after)`: a page to read; `None` once the last one was read.
    let pages = futures_util::stream::try_unfold(Some(None), move |state: Option<Option<K>>| {
        let fetch = fetch.clone();
        async move {
            let Some(after) = state else {
                return Ok::<_, sqlx::Error>(None);
            };
            let page = fetch(after).await?;
            Ok(Some((Bytes::from(page.text), page.next.map(Some))))
        }
    });
    let head = futures_util::stream::iter(head.map(|h| Ok(Bytes::from(h))));
    let mut res = Response::new(Body::from_stream(futures_util::StreamExt::chain(
        head, pages,
    )));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_special_characters_quoted() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("=1+1"), "'=1+1");
        assert_eq!(cell("+31 20"), "'+31 20");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("\tx"), "'\tx");
        assert_eq!(cell("\rx"), "\"'\rx\"");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell(""), "");
        assert_eq!(record(["a", "=b", "c d"]), "a,'=b,c d\r\n");
    }

    #[test]
    fn a_page_names_a_next_one_only_when_full() {
        let full = Page::of(&[1, 2, 3], 3, |n| format!("{n}\r\n"), |n| *n);
        assert_eq!(
            (full.text.as_str(), full.next),
            ("1\r\n2\r\n3\r\n", Some(3))
        );
        let short = Page::of(&[4, 5], 3, |n| format!("{n}\r\n"), |n| *n);
        assert_eq!((short.text.as_str(), short.next), ("4\r\n5\r\n", None));
        let empty = Page::<i32>::of(&[], 3, |n: &i32| n.to_string(), |n| *n);
        assert_eq!((empty.text.as_str(), empty.next), ("", None));
    }
}
