//! Criterion benchmark of the pipeline (`ObjectStream`) against an in-process HTTP server, next to
//! the same objects fetched by bare reqwest with the same number of requests in flight.
//!
//! `cargo bench --bench pipeline`. The server runs on its own runtime thread and answers every
//! GET (whole or ranged) from one buffer in memory, ignoring the signature, so the figures are
//! the client's cost: signing, the HTTP stack, budget and ordering, the CRC-64 check and the
//! copies, without the Python side. The ratio of the two rows of a group is the pipeline's
//! overhead over the bare HTTP stack; end-to-end figures with Python and the peers are in
//! BENCHMARKS.md.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

use _core::internals::{
    crc64, Credential, ObjectRequest, ObjectStream, ProvideCredential, Session, SessionBuilder,
};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const CONCURRENCY: usize = 24;

/// Answers `GET /bucket/key` with the first `size` bytes of `content` (as large as the largest
/// object of any case), where `size` is the
/// number after the last `-` of the key (`obj-000001-102400`), honouring `Range: bytes=a-b`.
async fn serve(listener: TcpListener, content: Bytes) {
    while let Ok((socket, _)) = listener.accept().await {
        let _ = socket.set_nodelay(true);
        tokio::spawn(connection(socket, content.clone()));
    }
}

async fn connection(socket: TcpStream, content: Bytes) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    loop {
        let mut path = String::new();
        let mut range: Option<(usize, usize)> = None;
        loop {
            line.clear();
            if read.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if path.is_empty() {
                path = l.split(' ').nth(1).unwrap_or("").to_string();
            } else if let Some(v) = l
                .strip_prefix("range: bytes=")
                .or(l.strip_prefix("Range: bytes="))
            {
                let (a, b) = v.split_once('-').unwrap_or(("0", ""));
                range = Some((a.parse().unwrap_or(0), b.parse().unwrap_or(usize::MAX)));
            }
        }
        let size: usize = path
            .rsplit('-')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let size = size.min(content.len());
        let body = content.slice(..size);
        let head = match range {
            Some((start, end)) => {
                let end = end.min(size.saturating_sub(1));
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\n\
                     Content-Range: bytes {start}-{end}/{size}\r\nETag: \"e\"\r\n\r\n",
                    end + 1 - start
                )
            }
            None => format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nETag: \"e\"\r\n\
                 x-oss-hash-crc64ecma: {}\r\n\r\n",
                crc64(&body)
            ),
        };
        let body = match range {
            Some((start, end)) => body.slice(start..=end.min(size.saturating_sub(1))),
            None => body,
        };
        write.write_all(head.as_bytes()).await?;
        write.write_all(&body).await?;
    }
}

#[derive(Debug)]
struct Fixed;

impl ProvideCredential for Fixed {
    fn provide_credential(&self) -> _core::internals::Result<Option<Credential>> {
        Ok(Some(Credential {
            access_key_id: "bench-ak".into(),
            access_key_secret: "bench-sk".into(),
            security_token: None,
            expiration: None,
        }))
    }

    fn describe(&self) -> String {
        "fixed bench credentials".into()
    }
}

struct Setup {
    session: Session,
    runtime: Arc<Runtime>,
    base: String,
    _server: Runtime,
}

fn setup() -> Setup {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let data: Vec<u8> = (0..64 * MIB).map(|i| (i * 131 % 251) as u8).collect();
    let content = Bytes::from(data);
    let listener = server
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("port").port();
    server.spawn(serve(listener, content));
    let base = format!("http://127.0.0.1:{port}");
    let session = SessionBuilder::new(base.clone())
        .with_region("cn-hangzhou")
        .with_provider(Box::new(Fixed))
        .build()
        .expect("session");
    let runtime = session.runtime().expect("runtime");
    Setup {
        session,
        runtime,
        base,
        _server: server,
    }
}

fn keys(count: usize, size: usize) -> Vec<String> {
    (0..count).map(|i| format!("obj-{i:06}-{size}")).collect()
}

/// Every object through the pipeline, every part taken in order; returns the bytes received.
fn through_pipeline(s: &Setup, keys: &[String], size: usize) -> usize {
    let client = s.session.client().expect("client");
    let mut stream = ObjectStream::new(
        client,
        s.runtime.handle().clone(),
        s.session.budget(),
        s.session.stream_settings(),
    );
    for key in keys {
        stream.push(ObjectRequest {
            bucket: "bench".into(),
            key: key.clone(),
            size: Some(size as u64),
            ..ObjectRequest::default()
        });
    }
    s.runtime.block_on(async {
        let mut total = 0;
        while let Some(start) = stream.next_object().await {
            let start = start.expect("object");
            total += start.first.body.len();
            while let Some(part) = stream.next_part(start.seq).await {
                total += part.expect("part").body.len();
            }
        }
        total
    })
}

/// The same objects by bare reqwest, whole, `CONCURRENCY` at a time, in order.
fn through_reqwest(s: &Setup, http: &reqwest::Client, keys: &[String]) -> usize {
    s.runtime.block_on(async {
        futures::stream::iter(keys)
            .map(|key| {
                let url = format!("{}/bench/{key}", s.base);
                async move {
                    let response = http.get(url).send().await.expect("response");
                    response.bytes().await.expect("body").len()
                }
            })
            .buffered(CONCURRENCY)
            .fold(0, |sum, n| async move { sum + n })
            .await
    })
}

fn pipeline(c: &mut Criterion) {
    let s = setup();
    let http = reqwest::Client::builder()
        .http1_only()
        .no_gzip()
        .pool_max_idle_per_host(256)
        .build()
        .expect("reqwest");
    let cases = [
        ("2000 x 100 KiB", 2000, 100 * KIB),
        ("64 x 4 MiB", 64, 4 * MIB),
        ("4 x 64 MiB (8 MiB parts)", 4, 64 * MIB),
    ];
    for (name, count, size) in cases {
        let keys = keys(count, size);
        let mut group = c.benchmark_group(format!("pipeline {name}"));
        group.throughput(Throughput::Bytes((count * size) as u64));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(5));
        group.bench_function(BenchmarkId::new("ObjectStream", CONCURRENCY), |b| {
            b.iter(|| assert_eq!(through_pipeline(&s, &keys, size), count * size))
        });
        group.bench_function(BenchmarkId::new("bare reqwest", CONCURRENCY), |b| {
            b.iter(|| assert_eq!(through_reqwest(&s, &http, &keys), count * size))
        });
        group.finish();
    }
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
