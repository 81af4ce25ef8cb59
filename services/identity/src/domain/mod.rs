//! Identity's rules, without I/O.

pub mod credential;
pub mod email;
pub mod password;
pub mod refresh_token;
