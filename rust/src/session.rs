//! Turns the user's options (endpoint, region, credentials, config file) into clients.
//!
//! A [`Session`] is validated once, up front, so bad input fails when a dataset is built rather
//! than mid-epoch. The HTTP client and runtime it hands out are per process: a forked
//! DataLoader worker gets fresh ones instead of its parent's sockets and threads.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::runtime::Runtime;

use crate::config::{Config, LoadedConfig};
use crate::credentials::{
    aws_default_chain, ChainProvider, CredentialCache, EnvProvider, FileProvider, ProvideCredential,
};
use crate::error::{Error, Result};
use crate::http::audit::AuditLog;
use crate::http::client::{ClientSettings, OssClient};
use crate::http::request::Timeouts;
use crate::http::retry::RetryConfig;
use crate::memory::budget::Budget;
use crate::memory::buffer_pool;
use crate::ops::local::LocalStore;
use crate::per_process::PerProcess;
use crate::pipeline::StreamSettings;
use crate::protocol::endpoint::Endpoint;
use crate::protocol::{Dialect, OSS, S3};
use crate::sign::{AwsV4Signer, OssV4Signer, Signer};
use crate::upload::UploadSettings;

const MIB: u64 = 1024 * 1024;

/// Options as the user gave them.
#[derive(Debug, Default)]
pub struct SessionBuilder {
    endpoint: String,
    region: String,
    cred_path: String,
    config_path: String,
    provider: Option<Box<dyn ProvideCredential>>,
    path_style: Option<bool>,
    default_cred_file: Option<PathBuf>,
    /// The region the environment names; `None`: read it at build time, for the protocol.
    env_region: Option<String>,
    /// The protocol: OSS unless told otherwise.
    dialect: Option<&'static Dialect>,
}

impl SessionBuilder {
    /// Starts from an endpoint such as `http://oss-cn-beijing-internal.aliyuncs.com`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        SessionBuilder {
            endpoint: endpoint.into(),
            default_cred_file: FileProvider::default_path(),
            ..Default::default()
        }
    }

    /// The protocol spoken: `oss://` (the default) or `s3://` URIs.
    pub(crate) fn with_dialect(mut self, dialect: &'static Dialect) -> Self {
        self.dialect = Some(dialect);
        self
    }

    /// Region; empty means the protocol's environment variable (`OSS_REGION`; `AWS_REGION`,
    /// then `AWS_DEFAULT_REGION`), then inference from the endpoint (S3: else `us-east-1`).
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// The JSON credentials file; empty means the next source in the chain.
    pub fn with_cred_path(mut self, path: impl Into<String>) -> Self {
        self.cred_path = path.into();
        self
    }

    /// The connector's config file; empty means the documented default when it exists.
    pub fn with_config_path(mut self, path: impl Into<String>) -> Self {
        self.config_path = path.into();
        self
    }

    /// A credentials provider tried before every other source.
    pub fn with_provider(mut self, provider: Box<dyn ProvideCredential>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Forces path style (`Some(true)`) or virtual-hosted style (`Some(false)`).
    pub fn with_path_style(mut self, path_style: Option<bool>) -> Self {
        self.path_style = path_style;
        self
    }

    /// Validates everything and loads credentials once.
    ///
    /// # Errors
    /// `InvalidInput` for the endpoint or an unresolvable region, `File` for the config or
    /// credentials file, `NoCredentials` listing what was tried.
    pub fn build(self) -> Result<Session> {
        let dialect = self.dialect.unwrap_or(&OSS);
        let env_region = self
            .env_region
            .clone()
            .or_else(|| dialect.env_region(|name| std::env::var(name).ok()));
        // An empty endpoint is the official's local-path mode (files, no server, no signing)
        // for oss://; for s3:// it is AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, else AWS's
        // endpoint of the region.
        let local = self.endpoint.trim().is_empty() && dialect == &OSS;
        let (endpoint, region) = if local {
            (Endpoint::parse(UNUSED_ENDPOINT, Some(true))?, String::new())
        } else if dialect == &S3 {
            let endpoint = match self.endpoint.trim() {
                "" => dialect
                    .env_endpoint(|name| std::env::var(name).ok())
                    .unwrap_or_default(),
                given => given.to_string(),
            };
            s3_endpoint(
                &endpoint,
                &self.region,
                env_region.as_deref(),
                self.path_style,
            )?
        } else {
            let endpoint = Endpoint::parse(&self.endpoint, self.path_style)?;
            let region = resolve_region(
                &self.region,
                env_region.as_deref(),
                &endpoint,
                &self.endpoint,
            )?;
            (endpoint, region)
        };
        let loaded = Config::load(&self.config_path)?;
        let mut chain = ChainProvider::new();
        if let Some(p) = self.provider {
            chain = chain.push(p);
        }
        if !self.cred_path.is_empty() {
            chain = chain.push(Box::new(FileProvider::required(&self.cred_path)));
        }
        if dialect == &S3 {
            chain = chain.push(Box::new(aws_default_chain()));
        } else {
            chain = chain.push(Box::new(EnvProvider::default()));
            if let Some(default) = self.default_cred_file {
                chain = chain.push(Box::new(FileProvider::optional(default)));
            }
        }
        let credentials = Arc::new(CredentialCache::new(Box::new(chain)));
        if !local {
            credentials.get()?;
        }
        let audit_path = &loaded.config.audit_path;
        let audit = if audit_path.is_empty() {
            None
        } else {
            Some(Arc::new(AuditLog::open(audit_path)?))
        };
        Ok(Session {
            dialect,
            endpoint,
            region,
            loaded,
            credentials,
            audit,
            client: PerProcess::new(),
            local,
        })
    }
}

/// Stands in for the endpoint in local-path mode, where no request is sent.
const UNUSED_ENDPOINT: &str = "http://127.0.0.1";

/// The S3 region with no other source.
const S3_DEFAULT_REGION: &str = "us-east-1";

/// An S3 endpoint and region: AWS's own endpoint of the region when none is given; the
/// region from the argument, the environment or an AWS endpoint's name, else `us-east-1`;
/// path style by default for IPs, `localhost` and endpoints with a port (MinIO and the like),
/// virtual-hosted for the rest (AWS requires it for new buckets).
fn s3_endpoint(
    raw: &str,
    explicit: &str,
    env: Option<&str>,
    path_style: Option<bool>,
) -> Result<(Endpoint, String)> {
    let given = [Some(explicit), env]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|r| !r.is_empty())
        .map(str::to_string);
    if raw.trim().is_empty() {
        let region = given.unwrap_or_else(|| S3_DEFAULT_REGION.to_string());
        let url = format!("https://s3.{region}.amazonaws.com");
        return Ok((Endpoint::parse(&url, path_style)?, region));
    }
    let probe = Endpoint::parse(raw, path_style)?;
    let style = path_style.or_else(|| probe.port.is_some().then_some(true));
    let endpoint = Endpoint::parse(raw, style)?;
    let region = given
        .or_else(|| endpoint.infer_s3_region())
        .unwrap_or_else(|| S3_DEFAULT_REGION.to_string());
    Ok((endpoint, region))
}

fn resolve_region(
    explicit: &str,
    env: Option<&str>,
    endpoint: &Endpoint,
    raw: &str,
) -> Result<String> {
    let chosen = [Some(explicit), env]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|r| !r.is_empty())
        .map(str::to_string)
        .or_else(|| endpoint.infer_region());
    chosen.ok_or_else(|| {
        Error::invalid(
            "endpoint",
            raw,
            format!(
                "no region can be inferred from it (expected oss-<region>[-internal].aliyuncs.com); \
                 pass region=\"cn-hangzhou\" (for example) or set {}",
                OSS.region_env_names()
            ),
        )
    })
}

/// Validated options plus the per-process client built from them.
#[derive(Debug)]
pub struct Session {
    dialect: &'static Dialect,
    endpoint: Endpoint,
    region: String,
    loaded: LoadedConfig,
    credentials: Arc<CredentialCache>,
    audit: Option<Arc<AuditLog>>,
    /// This process's client (see [`crate::per_process`]).
    client: PerProcess<Arc<OssClient>>,
    /// Local-path mode (empty endpoint): objects are files `/bucket/key`.
    local: bool,
}

impl Session {
    /// The protocol this session speaks.
    pub(crate) fn dialect(&self) -> &'static Dialect {
        self.dialect
    }

    /// The signing region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The parsed endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The configuration and where it came from.
    pub fn config(&self) -> &LoadedConfig {
        &self.loaded
    }

    /// This process's runtime.
    ///
    /// # Errors
    /// `Internal` when the runtime cannot start.
    pub fn runtime(&self) -> Result<Arc<Runtime>> {
        crate::runtime::runtime(self.loaded.config.dataset.prefetch_worker)
    }

    /// Pipeline limits from `datasetConfig`.
    pub fn stream_settings(&self) -> StreamSettings {
        let d = &self.loaded.config.dataset;
        StreamSettings {
            concurrency: d.prefetch_concurrency,
            part_size: d.prefetch_unit_mb * MIB,
            // Enough finished objects buffered that a consumer pausing for a few objects' worth
            // of work does not drain the pipeline; the byte budget bounds them anyway.
            lookahead: (d.prefetch_concurrency * 8).max(64),
        }
    }

    /// Upload limits from `checkpointConfig`.
    pub(crate) fn upload_settings(&self) -> UploadSettings {
        let k = &self.loaded.config.checkpoint;
        UploadSettings {
            part_size: usize::try_from(k.upload_io_size_mb * MIB).unwrap_or(usize::MAX),
            concurrency: k.upload_concurrency,
            buffer: k.upload_buffer_size_mb * MIB,
        }
    }

    /// Range size and ranges in flight of checkpoint reads, from `checkpointConfig`.
    pub(crate) fn checkpoint_reads(&self) -> (u64, usize) {
        let k = &self.loaded.config.checkpoint;
        (k.prefetch_io_size_mb * MIB, k.prefetch_concurrency)
    }

    /// This process's byte budget (`prefetchMB`).
    pub fn budget(&self) -> Arc<Budget> {
        let capacity = self.loaded.config.dataset.prefetch_mb * MIB;
        // The budgeted bytes arrive in pooled buffers: keep as many idle for the next ones.
        buffer_pool::keep_idle_up_to(capacity);
        Budget::for_process(capacity)
    }

    /// This process's client, built on first use in each process.
    ///
    /// # Errors
    /// `Internal` when the HTTP stack cannot be initialised.
    pub fn client(&self) -> Result<Arc<OssClient>> {
        self.client.get_or_try_init(|| {
            let config = &self.loaded.config;
            let ms = std::time::Duration::from_millis;
            let r = &config.retry;
            let settings = ClientSettings {
                retry: RetryConfig {
                    max_attempts: r.max_attempts,
                    deadline: ms(r.operation_timeout_ms),
                    ..RetryConfig::default()
                },
                timeouts: Timeouts {
                    connect: ms(r.connect_timeout_ms),
                    first_byte: ms(r.first_byte_timeout_ms),
                    between_bytes: ms(r.read_timeout_ms),
                },
                max_concurrency: config.dataset.prefetch_concurrency,
                audit: self.audit.clone(),
                max_idle_connections: config
                    .dataset
                    .prefetch_concurrency
                    .max(ClientSettings::default().max_idle_connections),
            };
            let signer: Arc<dyn Signer> = if self.dialect == &S3 {
                Arc::new(AwsV4Signer::new(self.region.clone()))
            } else {
                Arc::new(OssV4Signer::new(self.region.clone()))
            };
            let client = OssClient::new(
                self.endpoint.clone(),
                self.dialect,
                signer,
                self.credentials.clone(),
                settings,
            )?;
            let client = if self.local {
                client.reading_files(LocalStore::filesystem_root())
            } else {
                client
            };
            Ok(Arc::new(client))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        Endpoint::parse(s, None).unwrap()
    }

    #[test]
    fn region_order_is_argument_env_inference() {
        let e = ep("oss-cn-beijing.aliyuncs.com");
        assert_eq!(
            resolve_region("cn-x", Some("cn-y"), &e, "").unwrap(),
            "cn-x"
        );
        assert_eq!(resolve_region("", Some("cn-y"), &e, "").unwrap(), "cn-y");
        assert_eq!(resolve_region("", None, &e, "").unwrap(), "cn-beijing");
        assert_eq!(resolve_region(" ", Some(""), &e, "").unwrap(), "cn-beijing");
    }

    #[test]
    fn unresolvable_region_asks_for_region_argument() {
        let raw = "http://127.0.0.1:9000";
        let err = resolve_region("", None, &ep(raw), raw)
            .unwrap_err()
            .to_string();
        assert!(err.contains("region="), "{err}");
        assert!(err.contains(raw), "{err}");
    }

    #[test]
    fn s3_region_and_endpoint() {
        use crate::protocol::endpoint::AddressingStyle;
        // No endpoint: AWS's endpoint of the region, virtual-hosted.
        let (e, region) = s3_endpoint("", "", Some("eu-west-1"), None).unwrap();
        assert_eq!(region, "eu-west-1");
        assert_eq!(e.url("b", "k"), "https://b.s3.eu-west-1.amazonaws.com/k");
        let (_, region) = s3_endpoint("", "", None, None).unwrap();
        assert_eq!(region, "us-east-1");
        // The argument, then the environment, then the endpoint's name, then us-east-1.
        let aws = "https://s3.ap-south-1.amazonaws.com";
        assert_eq!(s3_endpoint(aws, "x-1", Some("y-1"), None).unwrap().1, "x-1");
        assert_eq!(s3_endpoint(aws, " ", Some("y-1"), None).unwrap().1, "y-1");
        assert_eq!(s3_endpoint(aws, "", None, None).unwrap().1, "ap-south-1");
        assert_eq!(
            s3_endpoint("https://minio.lan", "", None, None).unwrap().1,
            "us-east-1"
        );
        // A port (MinIO and the like) means path style unless told otherwise.
        let styled =
            |raw: &str, forced: Option<bool>| s3_endpoint(raw, "", None, forced).unwrap().0.style;
        assert_eq!(styled("http://minio.lan:9000", None), AddressingStyle::Path);
        assert_eq!(
            styled("http://minio.lan:9000", Some(false)),
            AddressingStyle::VirtualHosted
        );
        assert_eq!(styled(aws, None), AddressingStyle::VirtualHosted);
        assert_eq!(styled(aws, Some(true)), AddressingStyle::Path);
    }
}
