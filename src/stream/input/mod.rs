//! Live inputs: the kinds of source a live stream can have.

pub mod exec_policy;
pub mod exec_spec;
pub mod stderr_lines;
