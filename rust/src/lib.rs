//! Rust core of osstorchconnector: OSS V4 signing, listing and pipelined GETs, exposed to
//! Python through pyo3 when the `python` feature is on.
//!
//! The layers, data flowing one way (docs/ARCHITECTURE.md has the map):
//! [`protocol`] (URIs, endpoints, XML, the OSS dialect) and [`sign`] describe requests;
//! [`credentials`] supplies keys; [`http`] is the one request path (sign, send, retry,
//! throttle, audit); [`ops`] are the store's operations on top of it (GET, list);
//! [`memory`] holds where bodies are written and what bounds them; [`pipeline`] turns a stream
//! of objects into ordered, bounded, concurrent GETs; `py` converts types for Python.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
// Without the bindings, what only Python calls (writes, object operations) has no caller.
#![cfg_attr(not(feature = "python"), allow(dead_code))]

pub(crate) mod config;
pub(crate) mod credentials;
pub(crate) mod error;
pub(crate) mod http;
pub(crate) mod memory;
pub(crate) mod ops;
pub(crate) mod per_process;
pub(crate) mod pipeline;
pub(crate) mod protocol;
pub(crate) mod runtime;
pub(crate) mod session;
pub(crate) mod sign;
pub(crate) mod upload;

#[cfg(feature = "python")]
mod py;

/// What benchmarks and the Rust integration tests (`rust/tests`) drive directly. Not an API:
/// Python is the only supported way in.
#[doc(hidden)]
pub mod internals {
    pub use crate::credentials::{Credential, ProvideCredential};
    pub use crate::error::{Error, ErrorKind, Result, ServiceError};
    pub use crate::memory::budget::{Budget, Reservation};
    pub use crate::memory::chunks::Chunks;
    pub use crate::ops::crc::{crc64, crc64_combine};
    pub use crate::pipeline::{ObjectRequest, ObjectStart, ObjectStream, Part, StreamSettings};
    pub use crate::protocol::xml::ListBucketResult;
    pub use crate::protocol::Target;
    pub use crate::session::{Session, SessionBuilder};
    pub use crate::sign::{AwsV4Signer, OssV4Signer, RequestHead, Signer};
}
