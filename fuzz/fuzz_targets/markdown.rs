//! Markdown → sanitized HTML (`content::markdown::render`, the one renderer of preview and
//! public page). Invariant: whatever the input, the output holds no active content: no script,
//! style, iframe, object, embed, form or SVG/MathML element, no event-handler attribute, and no
//! URL with a scheme that runs code.
#![no_main]

use libfuzzer_sys::fuzz_target;

const ELEMENTS: &[&str] = &[
    "<script", "<style", "<iframe", "<object", "<embed", "<form", "<svg", "<math", "<base",
    "<meta", "<link",
];

fuzz_target!(|data: &[u8]| {
    let Ok(markdown) = std::str::from_utf8(data) else { return };
    let html = vantus::content::markdown::render(markdown);
    let lower = html.as_str().to_ascii_lowercase();
    for element in ELEMENTS {
        assert!(!lower.contains(element), "{element} in {lower}");
    }
    // The serializer writes every attribute as name="value" (quotes inside escaped), so the
    // text of a tag alternates outside/inside quotes: names outside, values inside.
    for tag in lower.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or("");
        let parts: Vec<&str> = tag.split('"').collect();
        for (i, part) in parts.iter().enumerate().step_by(2) {
            let names = part.split_whitespace().skip(usize::from(i == 0));
            for name in names {
                let name = name.trim_end_matches('=');
                assert!(!name.starts_with("on"), "event handler {name} in {lower}");
            }
            let attr = part.split_whitespace().last().unwrap_or("").trim_end_matches('=');
            let Some(value) = parts.get(i + 1) else { continue };
            if matches!(attr, "href" | "src" | "srcset" | "action" | "formaction" | "xlink:href") {
                let v = value.trim_start();
                for scheme in ["javascript:", "vbscript:", "data:"] {
                    assert!(!v.starts_with(scheme), "{scheme} URL in {lower}");
                }
            }
        }
    }
});
