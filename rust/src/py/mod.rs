//! The Python extension `osstorchconnector._core`: type conversion only.

mod client;
mod credential_provider;
mod errors;
mod object_stream;
mod wait;

use pyo3::prelude::*;

use crate::uri::OssUri;

/// Splits `oss://bucket/key` into `(bucket, key)`, raising `OssConfigError` when malformed.
#[pyfunction]
fn parse_oss_uri(uri: &str) -> PyResult<(String, String)> {
    let parsed = OssUri::parse(uri)?;
    Ok((parsed.bucket, parsed.key))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Route Rust `log` records to Python `logging` under the "osstorchconnector" logger names.
    let _ = pyo3_log::try_init();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<client::PyClient>()?;
    m.add_class::<object_stream::PyObjectStream>()?;
    m.add_function(wrap_pyfunction!(parse_oss_uri, m)?)?;
    Ok(())
}
