//! `mixreplace-load`: a load generator for `multipart/x-mixed-replace` servers (work in
//! progress: the response parser comes first).

pub mod multipart;
