//! Live inputs: what feeds a live stream.

pub mod demux;
pub mod relay;
