//! The one way Markdown becomes HTML: CommonMark, then an allow-list sanitizer.
//!
//! Every body the site shows passes through [`render`], whether it came from the seed files or,
//! later, from an editor. The result type, [`SanitizedHtml`], is the only HTML string templates
//! print unescaped, so unsanitized HTML cannot reach a page by accident.

use std::fmt;

use pulldown_cmark::{Options, Parser, html};

/// HTML that has been through the sanitizer. Only [`render`] constructs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SanitizedHtml(String);

impl SanitizedHtml {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SanitizedHtml {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Templates print this without escaping: it is already safe HTML.
impl askama::filters::HtmlSafe for SanitizedHtml {}

/// Renders Markdown to sanitized HTML. Raw HTML in the input is removed, links get
/// `rel="noopener noreferrer"`, and only http, https and mailto URLs survive.
pub fn render(markdown: &str) -> SanitizedHtml {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_SMART_PUNCTUATION;
    let mut unsafe_html = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut unsafe_html, Parser::new_ext(markdown, options));
    SanitizedHtml(sanitizer().clean(&unsafe_html).to_string())
}

fn sanitizer() -> &'static ammonia::Builder<'static> {
    static BUILDER: std::sync::OnceLock<ammonia::Builder<'static>> = std::sync::OnceLock::new();
    BUILDER.get_or_init(|| {
        let mut b = ammonia::Builder::default();
        b.url_schemes(["http", "https", "mailto"].into_iter().collect())
            .link_rel(Some("noopener noreferrer"))
            // Footnote links and their targets use ids; keep them, namespaced by ammonia.
            .add_tag_attributes("sup", ["id"])
            .add_tag_attributes("div", ["id", "class"])
            .add_tag_attributes("li", ["id"])
            .add_tag_attributes("code", ["class"])
            .id_prefix(Some("fn-"));
        b
    })
}

/// Plain-text word count of a Markdown body, for reading-time estimates.
pub fn word_count(markdown: &str) -> usize {
    markdown
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_commonmark_and_tables() {
        let html = render("## Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n");
        assert!(html.as_str().contains("<h2>Title</h2>"));
        assert!(html.as_str().contains("<table>"));
        assert!(html.as_str().contains("<li>one</li>"));
    }

    #[test]
    fn strips_scripts_event_handlers_and_javascript_urls() {
        let html = render(
            "hi <script>alert(1)</script> <img src=x onerror=alert(2)> \
             [x](javascript:alert(3)) <a href=\"https://ok.test\" onclick=\"bad()\">ok</a>",
        );
        let s = html.as_str();
        assert!(!s.contains("<script"), "{s}");
        assert!(!s.contains("onerror"), "{s}");
        assert!(!s.contains("javascript:"), "{s}");
        assert!(!s.contains("onclick"), "{s}");
        assert!(s.contains("rel=\"noopener noreferrer\""), "{s}");
    }

    #[test]
    fn escapes_text_that_looks_like_markup() {
        let html = render("`<b>` and 1 < 2");
        assert!(html.as_str().contains("&lt;b&gt;"), "{html}");
    }
}
