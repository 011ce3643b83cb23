//! Rust core of osstorchconnector: OSS V4 signing, listing and pipelined GETs, exposed to
//! Python through pyo3 when the `python` feature is on.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod audit;
pub mod budget;
pub mod buffer_pool;
pub mod chunks;
pub mod client;
pub mod config;
pub mod credentials;
pub mod destination;
pub mod endpoint;
pub mod error;
pub mod get;
pub mod lent;
pub mod list;
pub mod memory;
pub mod retry;
pub mod runtime;
pub mod session;
pub mod sign;
pub mod span_read;
pub mod stream;
pub mod throttle;
pub mod uri;
pub mod xml;

#[cfg(feature = "python")]
mod py;
