//! What more than one of Keyplane's crates needs, written once.
//!
//! The vocabulary every service speaks ([`credential`], [`key_record`], [`scope`],
//! [`principal`], [`authz`], [`audit`], [`mail`], [`page`]) does no I/O, though some of it converts to and
//! from the protos; the rest wires configuration, storage, the cache and its bus, gRPC,
//! sealing, metrics and telemetry the same way in every process. What only one crate uses lives in
//! that crate.

pub mod audit;
pub mod authz;
pub mod cache;
pub mod config;
pub mod credential;
pub mod credential_cache;
pub mod crypto;
pub mod dataplane;
pub mod db;
pub mod error;
pub mod error_body;
pub mod grpc;
pub mod httpsig;
pub mod internal_auth;
pub mod key_record;
pub mod mail;
pub mod metrics;
pub mod orgs_peer;
pub mod outbox;
pub mod page;
pub mod principal;
pub mod rate_limit;
pub mod redis_link;
pub mod runtime;
pub mod scope;
pub mod telemetry;
pub mod text;
pub mod time;

#[cfg(feature = "testsuite")]
pub mod testsuite;
