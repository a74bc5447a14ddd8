//! What every page shares: the document head, the navigation and the footer.

use crate::http::assets::ASSETS;

/// The navigation section a page belongs to, for `aria-current`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Home,
    Work,
    Services,
    Process,
    Insights,
    About,
    Contact,
    None,
}

pub struct NavItem {
    pub label: &'static str,
    pub href: &'static str,
    pub current: bool,
}

const NAV: [(&str, &str, Section); 5] = [
    ("Work", "/work", Section::Work),
    ("Services", "/services", Section::Services),
    ("Process", "/process", Section::Process),
    ("Insights", "/insights", Section::Insights),
    ("About", "/about", Section::About),
];

pub const SITE_NAME: &str = "Vantus Systems";

pub struct Layout {
    /// The full `<title>`.
    pub title: String,
    pub description: String,
    /// Absolute canonical URL; error pages have none.
    pub canonical: Option<String>,
    pub section: Section,
    pub og_type: &'static str,
    /// Absolute URL of the image shared with a link (`og:image`), when the item names one.
    pub image: Option<String>,
    /// Asks search engines not to index the page (previews).
    pub noindex: bool,
}

impl Layout {
    pub fn new(title: &str, description: &str, canonical: String, section: Section) -> Self {
        let title = if title.contains(SITE_NAME) {
            title.to_owned()
        } else {
            format!("{title} · {SITE_NAME}")
        };
        Self {
            title,
            description: description.to_owned(),
            canonical: Some(canonical),
            section,
            og_type: "website",
            image: None,
            noindex: false,
        }
    }

    /// For pages outside the content (errors): no canonical URL, no description.
    pub fn bare(title: &str, section: Section) -> Self {
        Self {
            title: format!("{title} · {SITE_NAME}"),
            description: String::new(),
            canonical: None,
            section,
            og_type: "website",
            image: None,
            noindex: false,
        }
    }

    pub fn article(mut self) -> Self {
        self.og_type = "article";
        self
    }

    pub fn nav(&self) -> Vec<NavItem> {
        NAV.iter()
            .map(|(label, href, section)| NavItem {
                label,
                href,
                current: *section == self.section,
            })
            .collect()
    }

    pub fn contact_current(&self) -> bool {
        self.section == Section::Contact
    }

    pub fn stylesheet(&self) -> &'static str {
        &ASSETS.stylesheet.url
    }

    pub fn icon(&self) -> &'static str {
        &ASSETS.icon.url
    }

    pub fn passkeys_script(&self) -> &'static str {
        &ASSETS.passkeys_js.url
    }

    pub fn site_name(&self) -> &'static str {
        SITE_NAME
    }

    pub fn year(&self) -> i32 {
        time::OffsetDateTime::now_utc().year()
    }
}
