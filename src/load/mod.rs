//! `mixreplace-load`: a load generator for `multipart/x-mixed-replace` servers (work in
//! progress: the response parser, the report and the per-client state machine come first).

pub mod client;
pub mod multipart;
pub mod report;
