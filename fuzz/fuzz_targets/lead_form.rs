//! The contact form and the lead API's body: URL-encoded and JSON bytes into `ContactForm`,
//! then its rules (`ContactForm::parse`). Invariant: never a panic; a lead that passes has
//! every field within the form's limits and no control characters in single-line fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vantus::leads::form::ContactForm;

fuzz_target!(|data: &[u8]| {
    let forms = [
        serde_urlencoded::from_bytes::<ContactForm>(data).ok(),
        serde_json::from_slice::<ContactForm>(data).ok(),
    ];
    for form in forms.into_iter().flatten() {
        if let Ok(lead) = form.parse() {
            let name = lead.name.as_str();
            assert!(!name.trim().is_empty());
            assert!(!name.chars().any(char::is_control), "control character in {name:?}");
            assert!(lead.email.as_str().contains('@'));
        }
    }
});
