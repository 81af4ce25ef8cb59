//! The rules of keys and tokens, without I/O.

pub mod grant;
pub mod key;
pub mod key_use;
pub mod leak;
pub mod regeneration;
