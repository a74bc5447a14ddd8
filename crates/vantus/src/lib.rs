//! Vantus: the public site, lead capture and admin portal of Vantus Systems, in one binary.
//!
//! Start at [`server`] for how a request is served, [`store`] for how both database engines are
//! driven by one query path, and [`config`] for every setting.

#[macro_use]
pub mod store;

pub mod audit;
pub mod cli;
pub mod config;
pub mod content;
pub mod fsutil;
pub mod health;
pub mod http;
pub mod jobs;
pub mod lifecycle;
pub mod ops;
pub mod secrets;
pub mod server;
pub mod site;
pub mod slug;
pub mod state;
pub mod telemetry;
pub mod tenancy;
