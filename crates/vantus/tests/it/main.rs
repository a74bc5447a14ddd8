//! Integration tests: the real server over real HTTP, on SQLite and PostgreSQL.
//! One test binary (modules below) so the suite links once.

mod support;

mod cli;
mod health;
mod http_hygiene;
mod migrations;
mod replicas;
mod site;
