//! CSV for spreadsheets that may open it: RFC 4180 quoting, and cells that a spreadsheet
//! would run as a formula neutralised.
//!
//! A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula (or
//! becomes one) in Excel, LibreOffice and Google Sheets: `=HYPERLINK(…)` in a lead's message
//! or an audit entry's resource would run when a colleague opens the export. Such a cell gets
//! a leading `'`, which spreadsheets show as text and do not evaluate (OWASP's advice). Every
//! export (the audit log, later leads) writes its rows with [`record`].

use std::borrow::Cow;

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
}
