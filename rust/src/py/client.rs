//! `Client`: a validated session, and the streams and reads it starts.

use pyo3::prelude::*;
use pyo3::types::PyIterator;

use super::body::PyBody;
use super::credential_provider::PyCredentialProvider;
use super::fill::fill_buffer;
use super::object_stream::PyObjectStream;
use super::range_stream::PyRangeStream;
use super::upload::PyUpload;
use super::wait::wait;
use crate::error::Error;
use crate::memory::chunks::Chunks;
use crate::ops::get::{GetRequest, Sink};
use crate::ops::list::Lister;
use crate::ops::range::ByteRange;
use crate::per_process::ProcessBound;
use crate::pipeline::ranges::RangeStream;
use crate::pipeline::span_read::{read_span_into, Span, SpanPlan};
use crate::pipeline::{ObjectStream, Shard};
use crate::protocol::uri::ObjectUri;
use crate::protocol::{OSS, S3};
use crate::session::{Session, SessionBuilder};
use crate::upload::Upload;

/// A page of a listing: `(key, size, etag)` of each object, and the token of the next page.
type ListPage = (Vec<(String, u64, String)>, Option<String>);

/// Endpoint, region, credentials and configuration, validated when built.
#[pyclass(frozen, name = "Client", module = "osstorchconnector._core")]
pub(crate) struct PyClient {
    session: ProcessBound<Session>,
}

impl PyClient {
    /// `uri` parsed, refused unless it is of this client's protocol.
    fn uri(&self, uri: &str) -> PyResult<ObjectUri> {
        Ok(ObjectUri::parse_for(uri, self.session.dialect())?)
    }

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
    #[pyo3(signature = (endpoint, *, region="", cred_path="", config_path="", cred_provider=None, path_style=None, protocol="oss"))]
    #[allow(clippy::too_many_arguments)] // Python keywords, one per option
    fn new(
        endpoint: &str,
        region: &str,
        cred_path: &str,
        config_path: &str,
        cred_provider: Option<&Bound<'_, PyAny>>,
        path_style: Option<bool>,
        protocol: &str,
    ) -> PyResult<Self> {
        let dialect = match protocol {
            "oss" => &OSS,
            "s3" => &S3,
            other => {
                return Err(
                    Error::invalid("protocol", other, "it must be \"oss\" or \"s3\"").into(),
                )
            }
        };
        let mut builder = SessionBuilder::new(endpoint)
            .with_dialect(dialect)
            .with_region(region)
            .with_cred_path(cred_path)
            .with_config_path(config_path)
            .with_path_style(path_style);
        if let Some(p) = cred_provider.filter(|p| !p.is_none()) {
            builder = builder.with_provider(Box::new(PyCredentialProvider::new(p)?));
        }
        Ok(PyClient {
            session: ProcessBound::new(builder.build()?),
        })
    }

    /// `"oss"` or `"s3"`: the protocol, and the scheme of the URIs this client takes.
    #[getter]
    fn protocol(&self) -> &'static str {
        self.session.dialect().scheme.trim_end_matches("://")
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

    /// Requests in flight per dataset stream (`datasetConfig.prefetchConcurrency`).
    #[getter]
    fn prefetch_concurrency(&self) -> usize {
        self.session.stream_settings().concurrency
    }

    /// Streams the objects under `oss://bucket/prefix`; with a shard, only every
    /// `shard_count`-th object starting at `shard_index`, the first `skip` of them passed
    /// over without being fetched (a resumed epoch).
    #[pyo3(signature = (uri, *, shard_index=0, shard_count=1, skip=0))]
    fn stream_prefix(
        &self,
        uri: &str,
        shard_index: usize,
        shard_count: usize,
        skip: usize,
    ) -> PyResult<PyObjectStream> {
        let parsed = self.uri(uri)?;
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
                skip,
            },
        );
        Ok(PyObjectStream::new(
            stream,
            runtime,
            None,
            self.session.dialect(),
        ))
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
        Ok(PyObjectStream::new(
            stream,
            runtime,
            Some(source),
            self.session.dialect(),
        ))
    }

    /// Reads a whole object.
    fn get_object(&self, py: Python<'_>, uri: &str) -> PyResult<PyBody> {
        let parsed = self.uri(uri)?;
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
    /// buffer `buffer`: parts of `part_size` (default: the dataset's) fetched at once (up to
    /// `concurrency`, default `prefetchConcurrency`), each straight into its place, all of one
    /// version (`if_match`, else the first part's).
    #[pyo3(signature = (bucket, key, start, buffer, *, if_match=None, part_size=None, concurrency=None))]
    #[allow(clippy::too_many_arguments)] // Python's keywords, one each
    fn read_span_into(
        &self,
        py: Python<'_>,
        bucket: &str,
        key: &str,
        start: u64,
        buffer: &Bound<'_, PyAny>,
        if_match: Option<&str>,
        part_size: Option<u64>,
        concurrency: Option<usize>,
    ) -> PyResult<()> {
        let runtime = self.session.runtime()?;
        let client = self.session.client()?;
        let settings = self.session.stream_settings();
        let plan = SpanPlan {
            part_size: part_size.unwrap_or(settings.part_size),
            concurrency: concurrency.unwrap_or(settings.concurrency),
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

    /// Byte ranges `(start, end)` of one object, fetched ahead (`concurrency`, default
    /// `prefetchConcurrency`, within `prefetchMB`) and yielded in order; all of one version
    /// (`if_match`).
    #[pyo3(signature = (bucket, key, ranges, *, if_match=None, concurrency=None))]
    fn stream_ranges(
        &self,
        bucket: &str,
        key: &str,
        ranges: Vec<(u64, u64)>,
        if_match: Option<String>,
        concurrency: Option<usize>,
    ) -> PyResult<PyRangeStream> {
        let runtime = self.session.runtime()?;
        let client = self.session.client()?;
        let target = client.target(bucket, key);
        let mut cut = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            if end <= start {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "empty byte range {start}..{end} of oss://{bucket}/{key}"
                )));
            }
            cut.push(ByteRange { start, end });
        }
        let stream = RangeStream::new(
            client,
            runtime.handle().clone(),
            self.session.budget(),
            target,
            if_match,
            cut,
            concurrency.unwrap_or(self.session.stream_settings().concurrency),
        );
        Ok(PyRangeStream::new(stream, runtime))
    }

    /// Range size of checkpoint reads (`checkpointConfig.prefetchIoSizeMB`), in bytes.
    #[getter]
    fn checkpoint_part_size(&self) -> u64 {
        self.session.checkpoint_reads().0
    }

    /// Ranged GETs in flight per checkpoint read (`checkpointConfig.prefetchConcurrency`).
    #[getter]
    fn checkpoint_concurrency(&self) -> usize {
        self.session.checkpoint_reads().1
    }

    /// Starts writing the object at `uri` (`checkpointConfig` sizes its parts and memory).
    fn upload(&self, uri: &str) -> PyResult<PyUpload> {
        let parsed = self.uri(uri)?;
        let runtime = self.session.runtime()?;
        let client = self.session.client()?;
        let target = client.target(&parsed.bucket, &parsed.key);
        let upload = Upload::new(
            client,
            runtime.handle().clone(),
            target,
            self.session.upload_settings(),
        );
        Ok(PyUpload::new(upload, runtime))
    }

    /// `(size, etag, crc or None)` of the object at `uri` (the protocol's own CRC-64).
    fn head_object(&self, py: Python<'_>, uri: &str) -> PyResult<(u64, String, Option<u64>)> {
        let parsed = self.uri(uri)?;
        let runtime = self.session.runtime()?;
        let client = self.session.client()?;
        let target = client.target(&parsed.bucket, &parsed.key);
        let meta = wait(py, &runtime, client.head_object(&target))??;
        Ok((meta.size, meta.etag, meta.crc))
    }

    /// One page of the listing of `oss://bucket/prefix`: `([(key, size, etag)], next_token)`;
    /// `next_token` is None after the last page.
    #[pyo3(signature = (bucket, prefix, continuation_token=None))]
    fn list_page(
        &self,
        py: Python<'_>,
        bucket: &str,
        prefix: &str,
        continuation_token: Option<String>,
    ) -> PyResult<ListPage> {
        let runtime = self.session.runtime()?;
        let client = self.session.client()?;
        let mut lister = Lister::resume(bucket, prefix, continuation_token);
        let page = wait(py, &runtime, async { lister.next_page(&client).await })??;
        let items = page
            .unwrap_or_default()
            .into_iter()
            .map(|o| (o.key, o.size, o.etag))
            .collect();
        let next = (!lister.is_done())
            .then(|| lister.continuation_token().map(str::to_string))
            .flatten();
        Ok((items, next))
    }

    /// Deletes the object at `uri` (a missing one is not an error).
    fn delete_object(&self, py: Python<'_>, uri: &str) -> PyResult<()> {
        let parsed = self.uri(uri)?;
        let runtime = self.session.runtime()?;
        let client = self.session.client()?;
        let target = client.target(&parsed.bucket, &parsed.key);
        wait(py, &runtime, client.delete_object(&target))??;
        Ok(())
    }

    /// Copies the object at `source` to `target` on the server; returns the copy's ETag.
    fn copy_object(&self, py: Python<'_>, source: &str, target: &str) -> PyResult<String> {
        let (from, to) = (self.uri(source)?, self.uri(target)?);
        let runtime = self.session.runtime()?;
        let client = self.session.client()?;
        let from = client.target(&from.bucket, &from.key);
        let to = client.target(&to.bucket, &to.key);
        Ok(wait(py, &runtime, client.copy_object(&from, &to))??)
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
