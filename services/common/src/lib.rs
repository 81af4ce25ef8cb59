//! Shared plumbing of Keyplane's services: the pieces every service needs exactly once.
//!
//! Domain vocabulary ([`credential`], [`scope`], [`principal`], [`authz`]) has no I/O;
//! the rest wires storage, cache, gRPC and telemetry the same way in every service.

pub mod audit;
pub mod authorizer;
pub mod authz;
pub mod cache;
pub mod config;
pub mod credential;
pub mod credential_cache;
pub mod crypto;
pub mod dataplane;
pub mod db;
pub mod error;
pub mod grpc;
pub mod ids;
pub mod internal_auth;
pub mod mail;
pub mod outbox;
pub mod principal;
pub mod rest;
pub mod runtime;
pub mod scope;
pub mod shutdown;
pub mod telemetry;
pub mod text;
pub mod time;

#[cfg(feature = "testsuite")]
pub mod testsuite;
