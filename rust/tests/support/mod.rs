//! What the pipeline tests share: the test server, a session on it, and small helpers.

pub mod server;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;

use _core::internals::{
    Budget, Chunks, Credential, ObjectRequest, ObjectStream, ProvideCredential, Session,
    SessionBuilder,
};
use server::{Object, TestServer};

/// The bucket every test object is in.
pub const BUCKET: &str = "bucket";
pub const MIB: usize = 1024 * 1024;

/// How long a test's consuming side may take before it counts as stalled.
const STALL: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Fixed;

impl ProvideCredential for Fixed {
    fn provide_credential(&self) -> _core::internals::Result<Option<Credential>> {
        Ok(Some(Credential {
            access_key_id: "test-ak".into(),
            access_key_secret: "test-sk".into(),
            security_token: None,
            expiration: None,
        }))
    }

    fn describe(&self) -> String {
        "fixed test credentials".into()
    }
}

/// A session on `server` with `config` (the connector's config file, as JSON).
pub fn session(server: &TestServer, test: &str, config: serde_json::Value) -> Session {
    let path = std::env::temp_dir().join(format!(
        "osstorchconnector-pipeline-{}-{test}.json",
        std::process::id()
    ));
    std::fs::write(&path, config.to_string()).expect("write the config file");
    let session = SessionBuilder::new(server.endpoint.clone())
        .with_region("cn-hangzhou")
        .with_path_style(Some(true))
        .with_config_path(path.to_string_lossy())
        .with_provider(Box::new(Fixed))
        .build()
        .expect("session");
    let _ = std::fs::remove_file(&path);
    session
}

/// The process's runtime, which the session's client runs on.
pub fn runtime(session: &Session) -> Arc<Runtime> {
    session.runtime().expect("the session's runtime")
}

/// A stream of the session's settings over `budget` (each test has its own budget, so tests
/// running at once do not see each other's reservations).
pub fn stream(session: &Session, budget: &Arc<Budget>) -> ObjectStream {
    ObjectStream::new(
        session.client().expect("client"),
        runtime(session).handle().clone(),
        budget.clone(),
        session.stream_settings(),
    )
}

/// `key` as a listing names it: with its size and ETag.
pub fn listed(key: &str, object: &Object) -> ObjectRequest {
    ObjectRequest {
        bucket: BUCKET.into(),
        key: key.into(),
        label: format!("label of {key}"),
        size: Some(object.content.len() as u64),
        etag: Some(object.etag.clone()),
    }
}

/// `key` as a URI names it: nothing known about it.
pub fn unlisted(key: &str) -> ObjectRequest {
    ObjectRequest {
        bucket: BUCKET.into(),
        key: key.into(),
        label: format!("label of {key}"),
        size: None,
        etag: None,
    }
}

pub fn to_vec(chunks: &Chunks) -> Vec<u8> {
    let mut bytes = vec![0; chunks.len()];
    chunks.copy_to(0, &mut bytes);
    bytes
}

/// Asserts that `got` is `want`, naming the first differing byte rather than printing both.
pub fn assert_bytes(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(at) = got.iter().zip(want).position(|(g, w)| g != w) {
        panic!("{what}: bytes differ from offset {at}");
    }
}

/// Runs the consuming side of a test on the session's runtime; fails if it stalls.
pub fn consume<F: Future>(runtime: &Runtime, what: &str, test: F) -> F::Output {
    runtime.block_on(async {
        match tokio::time::timeout(STALL, test).await {
            Ok(output) => output,
            Err(_) => panic!("{what}: stalled for {STALL:?}"),
        }
    })
}

/// Waits until every reservation of `budget` has been given back (aborted requests give
/// theirs back when their runtime drops them, a moment after the abort).
pub async fn budget_refilled(budget: &Budget) {
    let full = i64::try_from(budget.capacity()).expect("a small budget");
    let waited = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let released = budget.released();
            tokio::pin!(released);
            released.as_mut().enable();
            if budget.available() == full {
                return;
            }
            released.await;
        }
    })
    .await;
    if waited.is_err() {
        panic!(
            "the budget never came back: {} of {full} bytes available",
            budget.available()
        );
    }
}
