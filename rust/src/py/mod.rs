//! The Python extension `osstorchconnector._core`: type conversion only.

mod client;
mod credential_provider;
mod errors;
mod object_stream;
mod wait;

use std::sync::OnceLock;

use pyo3::prelude::*;

use crate::uri::OssUri;

/// pyo3-log caches Python logger levels; this handle drops the cache after they change.
static LOG_RESET: OnceLock<pyo3_log::ResetHandle> = OnceLock::new();

/// Makes Rust log records follow the current Python `logging` levels (call after changing them).
#[pyfunction]
fn reset_log_cache() {
    if let Some(handle) = LOG_RESET.get() {
        handle.reset();
    }
}

/// Splits `oss://bucket/key` into `(bucket, key)`, raising `OssConfigError` when malformed.
#[pyfunction]
fn parse_oss_uri(uri: &str) -> PyResult<(String, String)> {
    let parsed = OssUri::parse(uri)?;
    Ok((parsed.bucket, parsed.key))
}

/// glibc raises its mmap threshold after large frees, after which every freed part buffer stays
/// in some thread's arena and the process's RSS drifts far above the prefetch budget. A fixed
/// threshold keeps buffers of a MiB and more in their own mappings, returned to the OS on free.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_buffers_mapped() {
    const THRESHOLD: libc::c_int = 1 << 20;
    // SAFETY: mallopt only changes allocator tuning; it is called before any part buffer exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_buffers_mapped() {}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    keep_large_buffers_mapped();
    // Route Rust `log` records to Python `logging` under the "osstorchconnector" logger.
    if let Ok(handle) = pyo3_log::try_init() {
        let _ = LOG_RESET.set(handle);
    }
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<client::PyClient>()?;
    m.add_class::<object_stream::PyObjectStream>()?;
    m.add_class::<object_stream::PartReader>()?;
    m.add_function(wrap_pyfunction!(parse_oss_uri, m)?)?;
    m.add_function(wrap_pyfunction!(reset_log_cache, m)?)?;
    Ok(())
}
