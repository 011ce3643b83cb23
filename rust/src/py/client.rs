//! `Client`: a validated session, and the streams and reads it starts.

use pyo3::prelude::*;
use pyo3::types::PyIterator;

use super::body::PyBody;
use super::credential_provider::PyCredentialProvider;
use super::fill::fill_buffer;
use super::object_stream::PyObjectStream;
use super::wait::wait;
use crate::error::Error;
use crate::memory::chunks::Chunks;
use crate::ops::get::{GetRequest, Sink};
use crate::ops::range::ByteRange;
use crate::pipeline::span_read::{read_span_into, Span, SpanPlan};
use crate::pipeline::{ObjectStream, Shard};
use crate::protocol::uri::OssUri;
use crate::session::{Session, SessionBuilder};

/// Endpoint, region, credentials and configuration, validated when built.
#[pyclass(frozen, name = "Client", module = "osstorchconnector._core")]
pub(crate) struct PyClient {
    session: Session,
}

impl PyClient {
    fn get(
        &self,
        py: Python<'_>,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
        if_match: Option<&str>,
    ) -> PyResult<PyBody> {
        let runtime = self.session.runtime()?;
        let client = self.session.client()?;
        let target = client.target(bucket, key);
        let request = GetRequest {
            target: &target,
            range,
            if_match,
        };
        let out = wait(py, &runtime, client.get(request, Sink::Receive(None)))??;
        Ok(PyBody::new(out.body))
    }
}

#[pymethods]
impl PyClient {
    #[new]
    #[pyo3(signature = (endpoint, *, region="", cred_path="", config_path="", cred_provider=None, path_style=None))]
    fn new(
        endpoint: &str,
        region: &str,
        cred_path: &str,
        config_path: &str,
        cred_provider: Option<&Bound<'_, PyAny>>,
        path_style: Option<bool>,
    ) -> PyResult<Self> {
        let mut builder = SessionBuilder::new(endpoint)
            .with_region(region)
            .with_cred_path(cred_path)
            .with_config_path(config_path)
            .with_path_style(path_style);
        if let Some(p) = cred_provider.filter(|p| !p.is_none()) {
            builder = builder.with_provider(Box::new(PyCredentialProvider::new(p)?));
        }
        Ok(PyClient {
            session: builder.build()?,
        })
    }

    /// The signing region.
    #[getter]
    fn region(&self) -> &str {
        self.session.region()
    }

    /// Warnings met while reading the config file (unknown keys).
    #[getter]
    fn config_warnings(&self) -> Vec<String> {
        self.session.config().warnings.clone()
    }

    /// The config file used; empty when defaults apply.
    #[getter]
    fn config_path(&self) -> &str {
        &self.session.config().path
    }

    /// `logLevel`: 0 debug, 1 info, 2 warning, 3 error.
    #[getter]
    fn log_level(&self) -> u8 {
        self.session.config().config.log_level
    }

    /// `logPath`; empty when logging goes to Python `logging` only.
    #[getter]
    fn log_path(&self) -> &str {
        &self.session.config().config.log_path
    }

    /// Size of the ranged parts large objects are fetched in, in bytes.
    #[getter]
    fn part_size(&self) -> u64 {
        self.session.stream_settings().part_size
    }

    /// Streams the objects under `oss://bucket/prefix`; with a shard, only every
    /// `shard_count`-th object starting at `shard_index`.
    #[pyo3(signature = (uri, *, shard_index=0, shard_count=1))]
    fn stream_prefix(
        &self,
        uri: &str,
        shard_index: usize,
        shard_count: usize,
    ) -> PyResult<PyObjectStream> {
        let parsed = OssUri::parse(uri)?;
        if shard_count == 0 || shard_index >= shard_count {
            let shard = format!("{shard_index}/{shard_count}");
            return Err(
                Error::invalid("shard", &shard, "shard_index must be below shard_count").into(),
            );
        }
        let runtime = self.session.runtime()?;
        let stream = ObjectStream::from_prefix(
            self.session.client()?,
            runtime.handle().clone(),
            self.session.budget(),
            self.session.stream_settings(),
            &parsed.bucket,
            &parsed.key,
            Shard {
                index: shard_index,
                count: shard_count,
            },
        );
        Ok(PyObjectStream::new(stream, runtime, None))
    }

    /// Streams the objects named by an iterable of `(uri, label)` pairs, in that order.
    fn stream_objects(&self, items: &Bound<'_, PyAny>) -> PyResult<PyObjectStream> {
        let source = PyIterator::from_object(items)?.unbind();
        let runtime = self.session.runtime()?;
        let stream = ObjectStream::new(
            self.session.client()?,
            runtime.handle().clone(),
            self.session.budget(),
            self.session.stream_settings(),
        );
        Ok(PyObjectStream::new(stream, runtime, Some(source)))
    }

    /// Reads a whole object.
    fn get_object(&self, py: Python<'_>, uri: &str) -> PyResult<PyBody> {
        let parsed = OssUri::parse(uri)?;
        self.get(py, &parsed.bucket, &parsed.key, None, None)
    }

    /// Reads bytes `start..end` of an object (fewer when it is shorter); with `if_match`, of
    /// that version only (`OssObjectChangedError` when the object has been replaced).
    #[pyo3(signature = (bucket, key, start, end, *, if_match=None))]
    fn get_range(
        &self,
        py: Python<'_>,
        bucket: &str,
        key: &str,
        start: u64,
        end: u64,
        if_match: Option<&str>,
    ) -> PyResult<PyBody> {
        if end <= start {
            return Ok(PyBody::new(Chunks::new()));
        }
        self.get(py, bucket, key, Some(ByteRange { start, end }), if_match)
    }

    /// Reads bytes `start..start+len(buffer)` of an object into the writable, contiguous byte
    /// buffer `buffer`: parts of `part_size` fetched at once (up to `prefetchConcurrency`),
    /// each straight into its place, all of one version (`if_match`, else the first part's).
    #[pyo3(signature = (bucket, key, start, buffer, *, if_match=None))]
    fn read_span_into(
        &self,
        py: Python<'_>,
        bucket: &str,
        key: &str,
        start: u64,
        buffer: &Bound<'_, PyAny>,
        if_match: Option<&str>,
    ) -> PyResult<()> {
        let runtime = self.session.runtime()?;
        let client = self.session.client()?;
        let settings = self.session.stream_settings();
        let plan = SpanPlan {
            part_size: settings.part_size,
            concurrency: settings.concurrency,
        };
        let handle = runtime.handle().clone();
        let span = Span {
            bucket,
            key,
            start,
            if_match,
        };
        fill_buffer(
            py,
            &runtime,
            buffer,
            "read_span_into",
            |dst, writers| async move {
                read_span_into(&client, &handle, span, dst, plan, &writers).await
            },
        )
    }

    fn __repr__(&self) -> String {
        let e = self.session.endpoint();
        let port = e.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "Client(endpoint='{}://{}{port}', region='{}')",
            e.scheme,
            e.host,
            self.session.region()
        )
    }
}
