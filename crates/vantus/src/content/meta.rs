//! Kind-specific fields of content items, stored as JSON beside the common columns.
//! The seed files carry them as TOML tables (`[case_study]`, `[insight]`, `[page.<slug>]`).

use serde::{Deserialize, Serialize};

/// A headline figure: "< 90 s" / "order sync lag at p99".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub value: String,
    pub label: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub label: String,
    pub href: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaseStudyMeta {
    pub client: String,
    pub industry: String,
    pub role: String,
    pub timeline: String,
    pub outcome: String,
    pub constraints: Vec<String>,
    pub tags: Vec<String>,
    pub results: Vec<Figure>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InsightMeta {
    pub author: String,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HomeMeta {
    pub eyebrow: String,
    pub headline: String,
    pub lede: String,
    pub primary_cta: Link,
    pub secondary_cta: Link,
    pub proof_points: Vec<Figure>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Package {
    pub name: String,
    pub price: String,
    pub summary: String,
    pub includes: Vec<String>,
    pub ideal_for: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capability {
    pub name: String,
    pub summary: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServicesMeta {
    pub packages: Vec<Package>,
    pub capabilities: Vec<Capability>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Phase {
    pub name: String,
    pub summary: String,
    pub deliverables: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessMeta {
    pub phases: Vec<Phase>,
}
