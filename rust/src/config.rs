//! The connector's `config.json`, with the keys of the official OSS Connector for AI/ML.
//!
//! <https://www.alibabacloud.com/help/en/oss/developer-reference/oss-connector-for-ai-ml>

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Where the official connector looks when `config_path` is empty.
pub(crate) const DEFAULT_CONFIG_PATH: &str = "/etc/oss-connector/config.json";

/// Settings of the dataset pipeline (`datasetConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetConfig {
    /// GET requests kept in flight per iterator.
    pub prefetch_concurrency: usize,
    /// Runtime worker threads per process.
    pub prefetch_worker: usize,
    /// Bytes fetched ahead of the consumer, per process, in MiB.
    pub prefetch_mb: u64,
    /// Size of the ranged parts a large object is fetched in, in MiB.
    pub prefetch_unit_mb: u64,
    /// Concurrent list requests.
    pub list_concurrency: usize,
}

impl Default for DatasetConfig {
    fn default() -> Self {
        DatasetConfig {
            prefetch_concurrency: 24,
            prefetch_worker: 2,
            // By benchmark (BENCHMARKS.md): 16 parts of 8 MiB keep the 24 requests busy; a
            // larger budget only lets a consumer-bound pipeline fill more fresh memory, which
            // cost more CPU (page faults, cache misses) than it saved in waiting.
            prefetch_mb: 128,
            prefetch_unit_mb: 8,
            list_concurrency: 1,
        }
    }
}

/// Settings of checkpoint reads and writes (`checkpointConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// Ranged GETs in flight per checkpoint read.
    pub prefetch_concurrency: usize,
    /// Runtime worker threads for checkpoints.
    pub prefetch_worker: usize,
    /// Parts uploaded concurrently per checkpoint write.
    pub upload_concurrency: usize,
    /// Bytes per ranged GET of a checkpoint read, in MiB (`prefetchIoSizeMB`).
    pub prefetch_io_size_mb: u64,
    /// Bytes per uploaded part, in MiB (`uploadIoSizeMB`).
    pub upload_io_size_mb: u64,
    /// Bytes a writer may hold (buffered or in flight), in MiB (`uploadBufferSizeMB`).
    pub upload_buffer_size_mb: u64,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            prefetch_concurrency: 24,
            prefetch_worker: 4,
            upload_concurrency: 64,
            // As the official; 1 MiB ranges are what small random reads (safetensors headers,
            // torch.load records) want, and sequential reads grow their span from there.
            prefetch_io_size_mb: 1,
            upload_io_size_mb: 16,
            // The official's default is 1,024; 16 parts of 16 MiB saturate a link while
            // keeping a writer's memory at a quarter of that.
            upload_buffer_size_mb: 256,
        }
    }
}

/// Retry and timeout settings (`retryConfig`): ours, not the official connector's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySettings {
    /// Attempts per request, the first included. The default survives a storm in which ~30 % of
    /// attempts fail (0.3^15 ≈ 1e-8 per object), where the SDKs' 3 would lose ~3 % of objects.
    pub max_attempts: u32,
    /// Time allowed to open a connection, in ms.
    pub connect_timeout_ms: u64,
    /// Time allowed for the response headers to arrive, in ms.
    pub first_byte_timeout_ms: u64,
    /// Time allowed between two reads of a body, in ms.
    pub read_timeout_ms: u64,
    /// Time allowed for all attempts of one request together, in ms.
    pub operation_timeout_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_attempts: 15,
            connect_timeout_ms: 10_000,
            first_byte_timeout_ms: 30_000,
            read_timeout_ms: 30_000,
            operation_timeout_ms: 600_000,
        }
    }
}

/// The whole configuration, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// 0 debug, 1 info, 2 warning, 3 error.
    pub log_level: u8,
    /// Log file; empty means log through Python `logging` only.
    pub log_path: String,
    /// Audit file (one line per request); empty means none.
    pub audit_path: String,
    /// `datasetConfig`.
    pub dataset: DatasetConfig,
    /// `checkpointConfig`.
    pub checkpoint: CheckpointConfig,
    /// `retryConfig`.
    pub retry: RetrySettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            log_level: 1,
            log_path: String::new(),
            audit_path: String::new(),
            dataset: DatasetConfig::default(),
            checkpoint: CheckpointConfig::default(),
            retry: RetrySettings::default(),
        }
    }
}

/// A loaded configuration and the warnings (unknown keys) met while reading it.
#[derive(Debug, Clone, Default)]
pub struct LoadedConfig {
    /// The configuration.
    pub config: Config,
    /// The file it came from; empty when defaults were used.
    pub path: String,
    /// Human-readable warnings, e.g. unknown keys.
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads `path`; an empty path means [`DEFAULT_CONFIG_PATH`] when it exists, else defaults.
    ///
    /// # Errors
    /// `File` naming the path when an explicitly given file is missing, or any file is
    /// unreadable, not JSON, or holds a value of the wrong type or range.
    pub fn load(path: &str) -> Result<LoadedConfig> {
        let path = if path.is_empty() {
            if !Path::new(DEFAULT_CONFIG_PATH).exists() {
                return Ok(LoadedConfig::default());
            }
            DEFAULT_CONFIG_PATH
        } else {
            path
        };
        let text = std::fs::read_to_string(path).map_err(|e| Error::File {
            kind: "config",
            path: path.to_string(),
            reason: format!("cannot be read: {e}"),
        })?;
        let (config, warnings) = Config::from_json(&text).map_err(|reason| Error::File {
            kind: "config",
            path: path.to_string(),
            reason,
        })?;
        Ok(LoadedConfig {
            config,
            path: path.to_string(),
            warnings,
        })
    }

    /// Parses the JSON text of a config file. Returns the config and warnings, or the problem.
    pub fn from_json(text: &str) -> std::result::Result<(Config, Vec<String>), String> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| format!("is not valid JSON: {e}"))?;
        let root = root
            .as_object()
            .ok_or("must hold a JSON object at the top level")?;
        let mut reader = Reader::default();
        let mut c = Config::default();
        let d = &mut c.dataset;
        let k = &mut c.checkpoint;
        let r = &mut c.retry;
        for (key, value) in root {
            match key.as_str() {
                "logLevel" => c.log_level = reader.int(key, value, 0, 3)? as u8,
                "logPath" => c.log_path = reader.string(key, value)?,
                "auditPath" => c.audit_path = reader.string(key, value)?,
                "datasetConfig" => {
                    for (sub, v) in reader.object(key, value)? {
                        let name = format!("{key}.{sub}");
                        match sub.as_str() {
                            "prefetchConcurrency" => {
                                d.prefetch_concurrency = reader.int(&name, v, 1, 4096)? as usize
                            }
                            "prefetchWorker" => {
                                d.prefetch_worker = reader.int(&name, v, 1, 256)? as usize
                            }
                            "prefetchMB" => d.prefetch_mb = reader.int(&name, v, 1, 1 << 20)?,
                            "prefetchUnitMB" => {
                                d.prefetch_unit_mb = reader.int(&name, v, 1, 4096)?
                            }
                            "listConcurrency" => {
                                d.list_concurrency = reader.int(&name, v, 1, 1024)? as usize
                            }
                            _ => reader.unknown(&name),
                        }
                    }
                }
                "checkpointConfig" => {
                    for (sub, v) in reader.object(key, value)? {
                        let name = format!("{key}.{sub}");
                        match sub.as_str() {
                            "prefetchConcurrency" => {
                                k.prefetch_concurrency = reader.int(&name, v, 1, 4096)? as usize
                            }
                            "prefetchWorker" => {
                                k.prefetch_worker = reader.int(&name, v, 1, 256)? as usize
                            }
                            "uploadConcurrency" => {
                                k.upload_concurrency = reader.int(&name, v, 1, 4096)? as usize
                            }
                            "prefetchIoSizeMB" => {
                                k.prefetch_io_size_mb = reader.int(&name, v, 1, 1024)?
                            }
                            "uploadIoSizeMB" => {
                                // OSS parts are at most 5 GiB.
                                k.upload_io_size_mb = reader.int(&name, v, 1, 5 * 1024)?
                            }
                            "uploadBufferSizeMB" => {
                                k.upload_buffer_size_mb = reader.int(&name, v, 1, 1 << 20)?
                            }
                            // The official's internal write unit: nothing here to tune.
                            "writeIoSizeMB" => {
                                reader.int(&name, v, 1, 4096)?;
                            }
                            _ => reader.unknown(&name),
                        }
                    }
                }
                "retryConfig" => {
                    const DAY_MS: u64 = 86_400_000;
                    for (sub, v) in reader.object(key, value)? {
                        let name = format!("{key}.{sub}");
                        match sub.as_str() {
                            "maxAttempts" => r.max_attempts = reader.int(&name, v, 1, 100)? as u32,
                            "connectTimeoutMs" => {
                                r.connect_timeout_ms = reader.int(&name, v, 1, DAY_MS)?
                            }
                            "firstByteTimeoutMs" => {
                                r.first_byte_timeout_ms = reader.int(&name, v, 1, DAY_MS)?
                            }
                            "readTimeoutMs" => {
                                r.read_timeout_ms = reader.int(&name, v, 1, DAY_MS)?
                            }
                            "operationTimeoutMs" => {
                                r.operation_timeout_ms = reader.int(&name, v, 1, DAY_MS)?
                            }
                            _ => reader.unknown(&name),
                        }
                    }
                }
                _ => reader.unknown(key),
            }
        }
        Ok((c, reader.warnings))
    }
}

/// Typed access to JSON values that reports the key path on a mismatch.
#[derive(Default)]
struct Reader {
    warnings: Vec<String>,
}

impl Reader {
    fn int(&self, key: &str, v: &Value, min: u64, max: u64) -> std::result::Result<u64, String> {
        let n = v
            .as_u64()
            .ok_or_else(|| format!("{key} must be a whole number, not {v}"))?;
        if !(min..=max).contains(&n) {
            return Err(format!("{key} must be between {min} and {max}, not {n}"));
        }
        Ok(n)
    }

    fn string(&self, key: &str, v: &Value) -> std::result::Result<String, String> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{key} must be a string, not {v}"))
    }

    fn object<'a>(
        &self,
        key: &str,
        v: &'a Value,
    ) -> std::result::Result<&'a Map<String, Value>, String> {
        v.as_object()
            .ok_or_else(|| format!("{key} must be a JSON object, not {v}"))
    }

    fn unknown(&mut self, key: &str) {
        self.warnings
            .push(format!("unknown key {key:?} is ignored"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_object_gives_defaults() {
        let (c, w) = Config::from_json("{}").unwrap();
        assert_eq!(c, Config::default());
        assert!(w.is_empty());
    }

    #[test]
    fn every_documented_key_is_read() {
        let text = r#"{
            "logLevel": 0, "logPath": "/tmp/l.log", "auditPath": "/tmp/a.log",
            "datasetConfig": {"prefetchConcurrency": 48, "prefetchWorker": 4,
                              "prefetchMB": 1024, "prefetchUnitMB": 16, "listConcurrency": 2},
            "checkpointConfig": {"prefetchConcurrency": 32, "prefetchWorker": 8,
                                 "uploadConcurrency": 16, "prefetchIoSizeMB": 2,
                                 "uploadIoSizeMB": 8, "uploadBufferSizeMB": 64,
                                 "writeIoSizeMB": 32},
            "retryConfig": {"maxAttempts": 4, "connectTimeoutMs": 100, "firstByteTimeoutMs": 200,
                            "readTimeoutMs": 300, "operationTimeoutMs": 400}
        }"#;
        let (c, w) = Config::from_json(text).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.log_level, 0);
        assert_eq!(c.log_path, "/tmp/l.log");
        assert_eq!(c.audit_path, "/tmp/a.log");
        assert_eq!(
            c.dataset,
            DatasetConfig {
                prefetch_concurrency: 48,
                prefetch_worker: 4,
                prefetch_mb: 1024,
                prefetch_unit_mb: 16,
                list_concurrency: 2
            }
        );
        assert_eq!(
            c.checkpoint,
            CheckpointConfig {
                prefetch_concurrency: 32,
                prefetch_worker: 8,
                upload_concurrency: 16,
                prefetch_io_size_mb: 2,
                upload_io_size_mb: 8,
                upload_buffer_size_mb: 64,
            }
        );
        assert_eq!(
            c.retry,
            RetrySettings {
                max_attempts: 4,
                connect_timeout_ms: 100,
                first_byte_timeout_ms: 200,
                read_timeout_ms: 300,
                operation_timeout_ms: 400
            }
        );
    }

    #[test]
    fn unknown_keys_warn() {
        let (_, w) = Config::from_json(r#"{"logLevl": 1, "datasetConfig": {"foo": 1}}"#).unwrap();
        assert_eq!(w.len(), 2);
        assert!(w[0].contains("logLevl") || w[1].contains("logLevl"));
        assert!(w.iter().any(|m| m.contains("datasetConfig.foo")));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, needle) in [
            ("not json", "not valid JSON"),
            ("[]", "JSON object"),
            (r#"{"logLevel": 7}"#, "logLevel must be between 0 and 3"),
            (
                r#"{"logLevel": "debug"}"#,
                "logLevel must be a whole number",
            ),
            (
                r#"{"datasetConfig": 3}"#,
                "datasetConfig must be a JSON object",
            ),
            (
                r#"{"datasetConfig": {"prefetchConcurrency": 0}}"#,
                "datasetConfig.prefetchConcurrency must be between",
            ),
            (r#"{"logPath": 1}"#, "logPath must be a string"),
        ] {
            let err = Config::from_json(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let err = Config::load("/nonexistent/dir/config.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/dir/config.json"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in ".*") {
            let _ = Config::from_json(&s);
        }

        #[test]
        fn arbitrary_json_values_never_panic(
            level in proptest::num::i64::ANY,
            conc in proptest::num::f64::ANY,
            key in "[a-zA-Z]{0,12}",
        ) {
            let text = format!(
                r#"{{"logLevel": {level}, "datasetConfig": {{"prefetchConcurrency": {conc}, "{key}": []}}, "retryConfig": {{"maxAttempts": "{key}"}}}}"#
            );
            let _ = Config::from_json(&text);
        }
    }
}
