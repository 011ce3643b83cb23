//! The Python extension `osstorchconnector._core`: type conversion only.

mod body;
mod client;
mod credential_provider;
mod errors;
mod fill;
mod object_stream;
mod range_stream;
mod upload;
mod wait;

use std::sync::OnceLock;

use pyo3::prelude::*;

use crate::protocol::uri::ObjectUri;

/// pyo3-log caches Python logger levels; this handle drops the cache after they change.
static LOG_RESET: OnceLock<pyo3_log::ResetHandle> = OnceLock::new();

/// Makes Rust log records follow the current Python `logging` levels (call after changing them).
#[pyfunction]
fn reset_log_cache() {
    if let Some(handle) = LOG_RESET.get() {
        handle.reset();
    }
}

/// Splits `oss://bucket/key` (or `s3://bucket/key`) into `(bucket, key)`, raising
/// `OssConfigError` when malformed.
#[pyfunction]
fn parse_oss_uri(uri: &str) -> PyResult<(String, String)> {
    let parsed = ObjectUri::parse(uri)?;
    Ok((parsed.bucket, parsed.key))
}

/// The protocol a URI names: `"oss"` or `"s3"`, raising `OssConfigError` when malformed.
#[pyfunction]
fn uri_protocol(uri: &str) -> PyResult<&'static str> {
    Ok(ObjectUri::parse(uri)?
        .dialect
        .scheme
        .trim_end_matches("://"))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    crate::memory::pages::tune_allocator();
    // Route Rust `log` records to Python `logging` under the "osstorchconnector" logger.
    if let Ok(handle) = pyo3_log::try_init() {
        let _ = LOG_RESET.set(handle);
    }
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<body::PyBody>()?;
    m.add_class::<body::Window>()?;
    m.add_class::<client::PyClient>()?;
    m.add_class::<object_stream::PyObjectStream>()?;
    m.add_class::<object_stream::PartReader>()?;
    m.add_class::<object_stream::StreamedObject>()?;
    m.add_class::<range_stream::PyRangeStream>()?;
    m.add_class::<upload::PyUpload>()?;
    m.add_function(wrap_pyfunction!(body::read_via, m)?)?;
    m.add_function(wrap_pyfunction!(parse_oss_uri, m)?)?;
    m.add_function(wrap_pyfunction!(uri_protocol, m)?)?;
    m.add_function(wrap_pyfunction!(reset_log_cache, m)?)?;
    Ok(())
}
