//! Live inputs: the kinds of source a live stream can have.

pub mod exec;
pub mod stderr_lines;
