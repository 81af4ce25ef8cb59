//! The end-to-end suite: one test binary, the whole platform per test, REST and gRPC.

mod advisors;
mod audit;
mod conformance;
mod console;
mod dataplane;
mod grpc;
mod idempotency;
mod identity;
mod invitations;
mod keys;
mod limits;
mod mcp;
mod observability;
mod oidc;
mod openapi;
mod orgs;
mod resilience;
mod revocation;
mod rotation;
mod sdk;
mod secret_scanning;
mod security;
mod smoke;
mod takeovers;
mod usage;
