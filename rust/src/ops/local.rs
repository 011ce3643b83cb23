//! Local-path mode (an empty endpoint, as the official connector has it): the object
//! `oss://bucket/key` is the file `/bucket/key`, and listing a prefix walks `/bucket`. The
//! datasets, the pipeline and its budget work unchanged on top; only the bytes come from files
//! instead of answers. For laptops, CI and tests without a server. Reads only.
//!
//! A file's ETag is made of its modification time and size, so a file replaced while it is
//! being read fails with [`Error::Changed`] like an object would.

use std::fs::{File, Metadata};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use bytes::Bytes;

use crate::error::{Error, Result, ServiceError};
use crate::memory::chunks::Receiving;
use crate::ops::get::{GetOutput, GetRequest, Sink};
use crate::ops::object::ObjectMeta;
use crate::protocol::xml::ObjectSummary;
use crate::protocol::Target;

/// Files under a root directory, addressed as `root/bucket/key`.
#[derive(Debug, Clone)]
pub(crate) struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// The official's layout: `oss://bucket/key` is `/bucket/key`.
    pub(crate) fn filesystem_root() -> Self {
        LocalStore {
            root: PathBuf::from("/"),
        }
    }

    fn path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    /// What a HeadObject would say of the file.
    pub(crate) async fn head(&self, target: &Target) -> Result<ObjectMeta> {
        let path = self.path(&target.bucket, &target.key);
        let target = target.clone();
        blocking(move || {
            let meta = file_meta(&path, &target, "HEAD")?;
            Ok(ObjectMeta {
                size: meta.len(),
                etag: etag_of(&meta),
                crc: None,
                last_modified: String::new(),
            })
        })
        .await
    }

    /// The requested bytes of the file, into the sink, as a GET would deliver them.
    pub(crate) async fn get(&self, request: GetRequest<'_>, sink: Sink) -> Result<GetOutput> {
        let path = self.path(&request.target.bucket, &request.target.key);
        let target = request.target.clone();
        let range = request.range;
        let if_match = request.if_match.map(str::to_string);
        blocking(move || {
            let mut file = File::open(&path).map_err(|e| io_error(&e, &path, &target, "GET"))?;
            let meta = file
                .metadata()
                .map_err(|e| io_error(&e, &path, &target, "GET"))?;
            let etag = etag_of(&meta);
            if let Some(wanted) = if_match.filter(|e| !e.is_empty() && *e != etag) {
                return Err(Error::Changed {
                    target,
                    etag: wanted,
                    request_id: String::new(),
                });
            }
            let size = meta.len();
            let start = range.map_or(0, |r| r.start).min(size);
            let end = range.map_or(size, |r| r.end.min(size));
            let len = usize::try_from(end.saturating_sub(start))
                .map_err(|_| Error::Internal(format!("{path:?}: range too large")))?;
            let read = |file: &mut File, into: &mut [u8]| {
                file.seek(SeekFrom::Start(start))
                    .and_then(|_| file.read_exact(into))
                    .map_err(|e| io_error(&e, &path, &target, "GET"))
            };
            // A file states no CRC: nothing to check the bytes against, so none is taken.
            let body = match sink {
                Sink::Into(mut dst) => {
                    if dst.len() != len {
                        return Err(Error::Protocol {
                            target,
                            reason: format!("the file ends at {size}, before the range does"),
                        });
                    }
                    read(&mut file, dst.as_mut_slice())?;
                    Receiving::for_length(0).finish()
                }
                Sink::Receive(lent) => {
                    let mut data = vec![0; len];
                    read(&mut file, &mut data)?;
                    let mut receiving = match lent {
                        Some(memory) if memory.len() == len => Receiving::into_lent(memory),
                        _ => Receiving::for_length(len),
                    };
                    receiving.push(Bytes::from(data));
                    receiving.finish()
                }
            };
            Ok(GetOutput {
                body,
                offset: start,
                object_size: size,
                etag,
                crc: None,
                stated_crc: None,
            })
        })
        .await
    }

    /// Every regular file under `root/bucket` whose key starts with `prefix`, in key order
    /// (bytes of the UTF-8 key, as OSS orders a listing). Symlinked files are followed,
    /// symlinked directories are not entered (no cycles).
    pub(crate) async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectSummary>> {
        let base = self.root.join(bucket);
        let target = Target {
            scheme: crate::protocol::dialect::OSS.scheme,
            bucket: bucket.to_string(),
            key: String::new(),
        };
        let prefix = prefix.to_string();
        blocking(move || {
            if !base.is_dir() {
                return Err(not_found(&target, "GET", &base, "NoSuchBucket"));
            }
            // Only directories on the prefix's path can hold matches: start as deep as it goes.
            let dir_part = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
            let start = base.join(dir_part);
            let mut found = Vec::new();
            if start.is_dir() {
                walk(&base, &start, &prefix, &mut found, &target)?;
            }
            found.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
            Ok(found)
        })
        .await
    }
}

fn walk(
    base: &Path,
    dir: &Path,
    prefix: &str,
    found: &mut Vec<ObjectSummary>,
    target: &Target,
) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(&e, dir, target, "GET"))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(&e, dir, target, "GET"))?;
        let path = entry.path();
        let Ok(relative) = path.strip_prefix(base) else {
            continue;
        };
        let Some(key) = relative.to_str().map(str::to_string) else {
            continue; // not UTF-8: no OSS key can name it
        };
        let kind = entry
            .file_type()
            .map_err(|e| io_error(&e, &path, target, "GET"))?;
        if kind.is_dir() {
            let below = format!("{key}/");
            if below.starts_with(prefix) || prefix.starts_with(&below) {
                walk(base, &path, prefix, found, target)?;
            }
        } else if key.starts_with(prefix) {
            // a symlink to a file counts as the file; to a directory, or dangling, as nothing
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => found.push(ObjectSummary {
                    key,
                    size: meta.len(),
                    etag: etag_of(&meta),
                }),
                _ => {}
            }
        }
    }
    Ok(())
}

/// `"<mtime ns hex>-<size hex>"`: changes when the file is rewritten.
fn etag_of(meta: &Metadata) -> String {
    let nanos = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("\"{nanos:x}-{:x}\"", meta.len())
}

fn file_meta(path: &Path, target: &Target, method: &str) -> Result<Metadata> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(meta),
        Ok(_) => Err(not_found(target, method, path, "NoSuchKey")),
        Err(e) => Err(io_error(&e, path, target, method)),
    }
}

/// A missing file is a missing object (404, `NoSuchKey`); a refused one a refusal (403).
fn io_error(e: &std::io::Error, path: &Path, target: &Target, method: &str) -> Error {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory => {
            not_found(target, method, path, "NoSuchKey")
        }
        ErrorKind::PermissionDenied => Error::Service(Box::new(ServiceError {
            method: method.to_string(),
            status: 403,
            code: "AccessDenied".into(),
            message: format!("local file {}: {e}", path.display()),
            target: target.clone(),
            ..ServiceError::default()
        })),
        _ => Error::File {
            kind: "local object",
            path: path.display().to_string(),
            reason: e.to_string(),
        },
    }
}

fn not_found(target: &Target, method: &str, path: &Path, code: &str) -> Error {
    Error::Service(Box::new(ServiceError {
        method: method.to_string(),
        status: 404,
        code: code.into(),
        message: format!("no such local file {}", path.display()),
        target: target.clone(),
        ..ServiceError::default()
    }))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("a local file read failed to run: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_walks_only_what_the_prefix_can_match_in_key_order() {
        let dir = std::env::temp_dir().join(format!("osc-local-{}", std::process::id()));
        let bucket = dir.join("b");
        for (name, body) in [("a/x", "1"), ("a/y/z", "22"), ("ab", "333"), ("c", "")] {
            let path = bucket.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        let store = LocalStore { root: dir.clone() };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let keys = |prefix: &str| {
            rt.block_on(store.list("b", prefix))
                .unwrap()
                .into_iter()
                .map(|o| (o.key, o.size))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(""),
            [
                ("a/x".into(), 1),
                ("a/y/z".into(), 2),
                ("ab".into(), 3),
                ("c".into(), 0)
            ]
        );
        assert_eq!(keys("a/"), [("a/x".into(), 1), ("a/y/z".into(), 2)]);
        assert_eq!(keys("a"), keys("").into_iter().take(3).collect::<Vec<_>>());
        assert_eq!(keys("a/y/"), [("a/y/z".into(), 2)]);
        assert!(keys("nothing").is_empty());
        let missing = rt.block_on(store.list("no-such-bucket", "")).unwrap_err();
        assert_eq!(missing.service().map(|e| e.status), Some(404));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
