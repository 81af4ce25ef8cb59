//! Identity's rules, without I/O.

pub mod email;
pub mod opaque_token;
pub mod password;
pub mod user;
pub mod verdict;
pub mod verification;
