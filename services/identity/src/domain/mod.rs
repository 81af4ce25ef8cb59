//! Identity's rules, without I/O.

pub mod credential;
pub mod email;
pub mod opaque_token;
pub mod password;
pub mod verification;
