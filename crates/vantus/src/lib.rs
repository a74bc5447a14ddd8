//! Vantus: the public site, lead capture and admin portal of Vantus Systems, in one binary.
//!
//! Start at [`server`] for how a request is served, [`store`] for how both database engines are
//! driven by one query path, and [`config`] for every setting.
//!
//! # Layers
//!
//! A module imports only from its own layer and the layers below it (`scripts/check-layers`
//! enforces this and the absence of import cycles; `scripts/lint-infra` runs it):
//!
//! | layer | modules | what lives there |
//! | --- | --- | --- |
//! | cli | [`cli`] | argument parsing and printing, one file per subcommand |
//! | server | [`server`] | start-up, the one place routes are assembled, shutdown |
//! | slices | [`site`], [`leads`], [`auth`], [`admin`], [`health`], [`ops`] | routes, handlers and views; operations (backup, restore, copy, doctor) |
//! | state | [`state`] | what every handler shares once the server is ready |
//! | domain | [`tenancy`], [`content`], [`audit`], [`jobs`], [`outbox`], [`mail`], [`media`] | models and queries, shared by slices |
//! | http | [`http`] | what every slice gets: layers, extractors, connection serving, error shape |
//! | telemetry | [`telemetry`] | logs, metrics, traces, error reports |
//! | store | [`store`], [`secrets`] | pools, connections, migrations, replicas; the secret key |
//! | config | [`config`] | typed settings, validated once |
//! | leaf | [`build`], [`console`], [`lifecycle`], [`slug`], [`fsutil`] | no imports from the crate |

#[macro_use]
pub mod store;

pub mod admin;
pub mod audit;
pub mod auth;
pub mod build;
pub mod cli;
pub mod config;
pub mod console;
pub mod content;
pub mod fsutil;
pub mod health;
pub mod http;
pub mod jobs;
pub mod leads;
pub mod lifecycle;
pub mod mail;
pub mod media;
pub mod ops;
pub mod outbox;
pub mod secrets;
pub mod server;
pub mod site;
pub mod slug;
pub mod state;
pub mod telemetry;
pub mod tenancy;
