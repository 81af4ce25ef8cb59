//! The usage rules: what a count is, how counts add up, and which windows may be read.

pub mod month;
pub mod rollup;
pub mod window;
