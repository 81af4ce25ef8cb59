//! The `keyplane` binary's library: one process running every service (`up`), one service
//! (`serve --target`), or the migrations; and the developer's client of the REST API
//! (`login`, `orgs`, `keys`, …). The end-to-end tests start the platform through
//! [`platform::run`], the same code as `keyplane up`.

pub mod client;
pub mod metrics_port;
pub mod migrate;
pub mod platform;
pub mod shutdown;
pub mod single;
