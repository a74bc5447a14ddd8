//! The one way Markdown becomes HTML: CommonMark, then an allow-list sanitizer.
//!
//! Every body the site shows passes through [`render`], whether it came from the seed files or
//! from an editor, for the public page and the preview alike. The result type,
//! [`SanitizedHtml`], is the only HTML string templates print unescaped, so unsanitized HTML
//! cannot reach a page by accident.
//!
//! Two layers, so that a gap in one is caught by the other:
//! 1. the Markdown events are rewritten before any HTML exists: raw HTML in the source becomes
//!    visible text, every link is written here with its `rel` (external ones also `nofollow`),
//!    and an image may point only at the media library ([`MEDIA_PREFIX`]) or at https;
//! 2. ammonia then cleans the result with an allow-list (tags, attributes, URL schemes), which
//!    also drops any `rel` this module did not write.
//!
//! The stored-XSS corpus in the tests below must render with no active content.

use std::fmt;

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd, html};

/// Where the media library serves its files; images in content may point here or at https.
pub const MEDIA_PREFIX: &str = "/media/";

/// The `rel` of a link to this site, and of one to another.
const REL_INTERNAL: &str = "noopener noreferrer";
const REL_EXTERNAL: &str = "noopener noreferrer nofollow";

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

/// Renders Markdown to sanitized HTML. Raw HTML in the input is shown as text, links get
/// `rel="noopener noreferrer"` (and `nofollow` when they leave the site), only http, https and
/// mailto links survive, and images only from the media library or https.
pub fn render(markdown: &str) -> SanitizedHtml {
    render_inner(markdown, None)
}

/// A media-library image as the renderer writes it: its size, and its responsive variants
/// (URL under [`MEDIA_PREFIX`], width in pixels), widest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LibraryImage {
    pub width: u32,
    pub height: u32,
    pub variants: Vec<(String, u32)>,
}

/// What the renderer asks about an image source: is it a library image, and how is it sized.
/// `crate::media::catalog` provides one for a body's images.
pub trait MediaLookup {
    fn image(&self, src: &str) -> Option<LibraryImage>;
}

/// [`render`], with library images written with `width`/`height` (no layout shift), a
/// `srcset` of their variants with `sizes`, and `loading="lazy"` for all but the first image
/// of the body (the one likely above the fold). Everything still passes the sanitizer.
pub fn render_with_media(markdown: &str, media: &dyn MediaLookup) -> SanitizedHtml {
    render_inner(markdown, Some(media))
}

fn render_inner(markdown: &str, media: Option<&dyn MediaLookup>) -> SanitizedHtml {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_SMART_PUNCTUATION;
    let mut unsafe_html = String::with_capacity(markdown.len() * 3 / 2);
    let events = Parser::new_ext(markdown, options).map(rewrite);
    match media {
        Some(media) => html::push_html(&mut unsafe_html, LibraryImages::new(events, media)),
        None => html::push_html(&mut unsafe_html, events),
    }
    SanitizedHtml(sanitizer().clean(&unsafe_html).to_string())
}

/// Layer 1 for images: a library image's events (start, alt text, end) become one `<img>`.
struct LibraryImages<'m, I> {
    events: I,
    media: &'m dyn MediaLookup,
    seen: usize,
}

impl<'m, I> LibraryImages<'m, I> {
    fn new(events: I, media: &'m dyn MediaLookup) -> Self {
        Self {
            events,
            media,
            seen: 0,
        }
    }
}

impl<'a, I: Iterator<Item = Event<'a>>> Iterator for LibraryImages<'_, I> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        let event = self.events.next()?;
        let Event::Start(Tag::Image {
            dest_url, title, ..
        }) = &event
        else {
            return Some(event);
        };
        self.seen += 1;
        let src = dest_url.trim();
        let Some(found) = allowed_image(src).then(|| self.media.image(src)).flatten() else {
            return Some(event);
        };
        let title = title.to_string();
        let src = src.to_owned();
        let mut alt = String::new();
        for inner in self.events.by_ref() {
            match inner {
                Event::End(TagEnd::Image) => break,
                Event::Text(t) | Event::Code(t) => alt.push_str(&t),
                Event::SoftBreak | Event::HardBreak => alt.push(' '),
                _ => {}
            }
        }
        let mut tag = format!(
            "<img src=\"{}\" alt=\"{}\"",
            escape_attr(&src),
            escape_attr(&alt)
        );
        if !title.is_empty() {
            tag.push_str(&format!(" title=\"{}\"", escape_attr(&title)));
        }
        if found.width > 0 && found.height > 0 {
            tag.push_str(&format!(
                " width=\"{}\" height=\"{}\"",
                found.width, found.height
            ));
        }
        let variants: Vec<&(String, u32)> = found
            .variants
            .iter()
            .filter(|(url, _)| is_plain_library_url(url))
            .collect();
        if !variants.is_empty() {
            let mut set: Vec<String> = variants
                .iter()
                .map(|(url, w)| format!("{} {w}w", escape_attr(url)))
                .collect();
            if found.width > 0 {
                set.push(format!("{} {}w", escape_attr(&src), found.width));
            }
            let widest = found.width.max(variants[0].1);
            tag.push_str(&format!(
                " srcset=\"{}\" sizes=\"(max-width: {widest}px) 100vw, {widest}px\"",
                set.join(", ")
            ));
        }
        if self.seen > 1 {
            tag.push_str(" loading=\"lazy\"");
        }
        tag.push_str(" decoding=\"async\">");
        Some(Event::InlineHtml(CowStr::from(tag)))
    }
}

/// A library address of the plainest kind (letters, digits, `-._/`): safe inside a
/// `srcset`, whose syntax gives commas and spaces a meaning.
fn is_plain_library_url(url: &str) -> bool {
    url.starts_with(MEDIA_PREFIX)
        && allowed_image(url)
        && url
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._/".contains(&b))
}

/// A `srcset` whose every candidate is a library URL with a width descriptor.
fn allowed_srcset(value: &str) -> bool {
    value.split(',').all(|candidate| {
        let mut parts = candidate.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(url), Some(w), None) => {
                is_plain_library_url(url)
                    && w.strip_suffix('w')
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            }
            _ => false,
        }
    })
}

/// A `sizes` value as [`LibraryImages`] writes it: no URL, no quotes, nothing but a media
/// condition and lengths.
fn allowed_sizes(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" ():,-%.".contains(&b))
}

/// Layer 1: raw HTML becomes text; links are written with their `rel`.
fn rewrite(event: Event<'_>) -> Event<'_> {
    match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            ..
        }) => {
            let href = if link_type == LinkType::Email && !dest_url.starts_with("mailto:") {
                format!("mailto:{dest_url}")
            } else {
                dest_url.to_string()
            };
            let rel = if is_external(&href) {
                REL_EXTERNAL
            } else {
                REL_INTERNAL
            };
            let mut tag = format!("<a href=\"{}\" rel=\"{rel}\"", escape_attr(&href));
            if !title.is_empty() {
                tag.push_str(&format!(" title=\"{}\"", escape_attr(&title)));
            }
            tag.push('>');
            Event::InlineHtml(CowStr::from(tag))
        }
        Event::End(TagEnd::Link) => Event::InlineHtml(CowStr::Borrowed("</a>")),
        other => other,
    }
}

/// A link that leaves the site: an absolute http(s) URL, or scheme-relative.
fn is_external(href: &str) -> bool {
    let lower = href.trim_start().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("//")
}

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Whether an image source is allowed: the media library, or https.
fn allowed_image(src: &str) -> bool {
    let src = src.trim();
    (src.starts_with(MEDIA_PREFIX) && !src.contains("..") && !src.contains('\\'))
        || src.to_ascii_lowercase().starts_with("https://")
}

fn sanitizer() -> &'static ammonia::Builder<'static> {
    static BUILDER: std::sync::OnceLock<ammonia::Builder<'static>> = std::sync::OnceLock::new();
    BUILDER.get_or_init(|| {
        let mut b = ammonia::Builder::default();
        b.url_schemes(["http", "https", "mailto"].into_iter().collect())
            // Layer 1 writes every link's rel; ammonia keeps only those two values.
            .link_rel(None)
            .add_tag_attributes("a", ["rel"])
            .attribute_filter(|element, attribute, value| match (element, attribute) {
                ("a", "rel") => {
                    matches!(value, REL_INTERNAL | REL_EXTERNAL).then_some(value.into())
                }
                ("img", "src") => allowed_image(value).then_some(value.into()),
                ("img", "srcset") => allowed_srcset(value).then_some(value.into()),
                ("img", "sizes") => allowed_sizes(value).then_some(value.into()),
                ("img", "width" | "height") => (!value.is_empty()
                    && value.len() <= 5
                    && value.bytes().all(|b| b.is_ascii_digit()))
                .then_some(value.into()),
                ("img", "loading") => (value == "lazy").then_some(value.into()),
                ("img", "decoding") => (value == "async").then_some(value.into()),
                _ => Some(value.into()),
            })
            // Footnote links and their targets use ids; keep them, namespaced by ammonia.
            .add_tag_attributes("sup", ["id"])
            .add_tag_attributes("div", ["id", "class"])
            .add_tag_attributes("li", ["id"])
            .add_tag_attributes("code", ["class"])
            .add_tag_attributes("img", ["srcset", "sizes", "loading", "decoding"])
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
        assert_eq!(active_content(s), None, "{s}");
        assert!(!s.contains("<script"), "{s}");
        assert!(!s.contains("javascript:"), "{s}");
    }

    #[test]
    fn escapes_text_that_looks_like_markup() {
        let html = render("`<b>` and 1 < 2");
        assert!(html.as_str().contains("&lt;b&gt;"), "{html}");
    }

    use super::super::xss_corpus::{XSS_CORPUS, active_content};

    #[test]
    fn the_stored_xss_corpus_renders_with_no_active_content() {
        for source in XSS_CORPUS {
            let html = render(source);
            if let Some(found) = active_content(html.as_str()) {
                panic!("{source:?} rendered {found}: {html}");
            }
        }
    }

    #[test]
    fn the_corpus_check_finds_what_it_must() {
        // The checker itself must be able to fail.
        for bad in [
            "<script>x</script>",
            "<img src=\"x\" onerror=\"y\">",
            "<a href=\"javascript:x\">x</a>",
            "<img src=\"http://t.example/p.gif\">",
            "<svg></svg>",
        ] {
            assert!(active_content(bad).is_some(), "{bad}");
        }
        assert_eq!(
            active_content("<p><a href=\"https://x.example\">x</a></p>"),
            None
        );
    }

    #[test]
    fn links_say_where_they_go_and_images_come_from_the_library_or_https() {
        let html = render(
            "[home](/work/x) [away](https://other.example/) <https://auto.example> \
             [mail](mailto:hi@example.com)\n\n![a](/media/ab12.webp) ![b](https://cdn.example/b.png) \
             ![c](http://cdn.example/c.png)",
        );
        let s = html.as_str();
        assert!(
            s.contains(r#"<a href="/work/x" rel="noopener noreferrer">home</a>"#),
            "{s}"
        );
        assert!(
            s.contains(
                r#"<a href="https://other.example/" rel="noopener noreferrer nofollow">away</a>"#
            ),
            "{s}"
        );
        assert!(
            s.contains(r#"href="https://auto.example" rel="noopener noreferrer nofollow""#),
            "{s}"
        );
        assert!(
            s.contains(r#"href="mailto:hi@example.com" rel="noopener noreferrer""#),
            "{s}"
        );
        assert!(s.contains(r#"src="/media/ab12.webp""#), "{s}");
        assert!(s.contains(r#"src="https://cdn.example/b.png""#), "{s}");
        assert!(
            !s.contains("http://cdn.example/c.png"),
            "plain http images are dropped: {s}"
        );
        // Raw HTML is shown, not run.
        let raw = render("<b>bold</b>");
        assert!(raw.as_str().contains("&lt;b&gt;bold&lt;/b&gt;"), "{raw}");
    }

    /// A lookup that calls every library image a 1200×800 one with two variants.
    struct EveryImage;

    impl MediaLookup for EveryImage {
        fn image(&self, src: &str) -> Option<LibraryImage> {
            src.starts_with(MEDIA_PREFIX).then(|| LibraryImage {
                width: 1200,
                height: 800,
                variants: vec![
                    (format!("{src}-w960.webp"), 960),
                    ("/media/x-w320.webp\" onerror=\"alert(1)".into(), 320),
                ],
            })
        }
    }

    #[test]
    fn library_images_get_their_size_variants_and_lazy_loading() {
        let html = render_with_media(
            "![Hero *shot*](/media/ab.jpg)\n\nText.\n\n![Second](/media/cd.png \"t\") ![ext](https://cdn.example/e.png)",
            &EveryImage,
        );
        let s = html.as_str();
        assert_eq!(active_content(s), None, "{s}");
        assert!(s.contains(r#"src="/media/ab.jpg""#), "{s}");
        assert!(s.contains(r#"alt="Hero shot""#), "{s}");
        assert!(
            s.contains(r#"width="1200""#) && s.contains(r#"height="800""#),
            "{s}"
        );
        assert!(
            s.contains(r#"srcset="/media/ab.jpg-w960.webp 960w, /media/ab.jpg 1200w""#),
            "a variant URL that is not a plain library URL is left out: {s}"
        );
        assert!(
            s.contains(r#"sizes="(max-width: 1200px) 100vw, 1200px""#),
            "{s}"
        );
        let first = &s[..s.find("Text.").unwrap()];
        assert!(
            !first.contains("loading="),
            "the first image loads at once: {s}"
        );
        assert!(s.contains(r#"loading="lazy""#), "{s}");
        assert!(s.contains(r#"src="https://cdn.example/e.png""#), "{s}");
    }

    #[test]
    fn the_stored_xss_corpus_renders_inert_with_a_media_lookup_too() {
        for source in XSS_CORPUS {
            let html = render_with_media(source, &EveryImage);
            if let Some(found) = active_content(html.as_str()) {
                panic!("{source:?} rendered {found}: {html}");
            }
        }
    }
}
