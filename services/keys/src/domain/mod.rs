//! The rules of keys and tokens, without I/O.

pub mod grant;
