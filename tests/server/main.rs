//! Integration tests: the real `mixreplace` binary on `127.0.0.1:0`, over real sockets.
//!
//! One test binary, so the harness runs every test in parallel (each starts its own
//! server): most of them wait on the 6.4 s demo, not on the CPU.

#[path = "../common/mod.rs"]
mod common;

mod answers;
mod churn;
mod cli;
mod curl;
mod demo;
mod stop;
