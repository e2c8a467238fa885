//! `mixreplace-load`: a load generator for `multipart/x-mixed-replace` servers (work in
//! progress: the response parser and the report come first).

pub mod multipart;
pub mod report;
