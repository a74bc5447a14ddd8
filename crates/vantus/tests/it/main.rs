//! Integration tests: the real server over real HTTP, on SQLite and PostgreSQL.
//! One test binary (modules below) so the suite links once.

mod support;

mod accounts;
mod audit_chain;
mod backup_hardening;
mod backup_restore;
mod cli;
mod cms;
mod config_doctor;
mod crm;
mod dashboard;
mod db_copy;
mod doctor;
mod harness_selftest;
mod health;
mod http_hardening;
mod http_hygiene;
mod invalidation;
mod jobs;
mod lead_durability;
mod leads;
mod media;
mod mfa;
mod migrations;
mod observability;
mod outbox;
mod passkeys;
mod portal;
mod properties;
mod rate_limits;
mod replicas;
mod restore_hardening;
mod route_access;
mod site;
mod transactions;
mod users;
