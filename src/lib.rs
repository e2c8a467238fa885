//! mixreplace: a small, fast server for `multipart/x-mixed-replace` HTTP streams, on one
//! single-threaded `mio` event loop.
//!
//! The modules, from the wire inwards: [`server`] (the loop), [`conn`] (one connection's
//! state machine), [`outbox`] (what a connection still has to write), [`http`] (requests
//! and response heads), [`multipart`] (framing), [`source`] (what a path streams),
//! [`spec`] (what `--stream` asks for), [`script`] (stream scripts), [`live`] and [`jpeg`]
//! (live MJPEG from a pipe), [`view`], [`access`], [`route`], [`stats`], [`wheel`]
//! (timers), [`clock`], [`sys`] and [`cli`]; [`load`] is the load generator
//! `mixreplace-load`.

pub mod access;
pub mod cli;
pub mod clock;
pub mod conn;
pub mod http;
pub mod jpeg;
pub mod live;
pub mod load;
pub mod multipart;
pub mod outbox;
pub mod route;
pub mod script;
pub mod server;
pub mod source;
pub mod spec;
pub mod stats;
pub mod sys;
pub mod view;
pub mod wheel;
