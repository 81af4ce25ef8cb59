//! gRPC plumbing shared by every service: the server (health, reflection, tracing,
//! internal auth) and the client side (channels, internal token, trace context).

mod client;
mod metered;
mod server;

pub use client::{Outbound, channel};
pub use server::{internal_auth_interceptor, serve, serve_guarded};
