//! mixreplace: a small, fast server for `multipart/x-mixed-replace` HTTP streams, on one
//! single-threaded `mio` event loop.
//!
//! The crate is four layers; each imports only from the layers below it:
//!
//! | layer | modules | concern |
//! |---|---|---|
//! | the loop | [`server`] ([`server::conn`], [`server::outbox`]) | the only owner of `Poll` and sockets: accept, one connection's life, writes |
//! | answers | [`routes`] ([`routes::access`], [`routes::stats`], [`routes::view`]) | what a request gets; no I/O |
//! | streams | [`stream`] ([`stream::multipart`], [`stream::spec`], [`stream::script`], [`stream::live`], [`stream::jpeg`]) | what is served, encoded once |
//! | leaves | [`http`], [`wheel`], [`clock`], [`sys`] | parsing, timers, time, system calls; nothing from the crate |
//!
//! [`cli`] turns flags into options for the loop; [`load`] is the load generator
//! `mixreplace-load`, beside the server, using only the leaves.

pub mod cli;
pub mod clock;
pub mod http;
pub mod load;
pub mod routes;
pub mod server;
pub mod stream;
pub mod sys;
pub mod wheel;
