//! The rules of orgs, without I/O.

pub mod access;
pub mod invitation;
pub mod leak_notice;
pub mod org;
pub mod org_fields;
pub mod revocation;
pub mod slug;
