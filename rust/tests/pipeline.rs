//! Integration tests of the download pipeline (`ObjectStream`) against an in-process server
//! that the tests steer (`support::server`). They establish that:
//!
//! - objects come out in the order they were pushed, byte for byte, whatever order the server
//!   answers in; an object larger than a part comes as its first part and then its parts in
//!   offset order (`objects_come_out_in_push_order_whatever_order_the_server_answers`);
//! - moving to the next object aborts the requests of the rest of the previous one (the server
//!   sees them given up), never starts its parts not yet started, and gives their budget back
//!   (`moving_past_an_object_cancels_its_remaining_parts`);
//! - requests in flight never hold more than the byte budget, and every byte of it comes back
//!   (`requests_in_flight_never_exceed_the_budget`);
//! - requests aborted while held by the server or backing off after a 503 give their running
//!   slot back, so later objects are still fetched (`aborted_requests_give_back_their_running_slots`);
//! - every part of an object comes from one version: a part asked for after the object was
//!   replaced fails with `Error::Changed` instead of returning new bytes — for an object listed
//!   with its ETag (`a_listed_object_replaced_between_parts_fails_with_changed`), for one pushed
//!   without size or ETag (`an_unlisted_object_is_pinned_to_its_first_answer`), and against a
//!   server that ignores `If-Match` (`a_replaced_object_is_caught_even_if_the_server_ignores_if_match`).
//!
//! - The rest of an object pushed without a size (scheduled once its first answer tells the
//!   size) is fetched even when later objects' results hold the whole budget
//!   (`the_rest_of_an_unlisted_object_is_not_starved_by_later_objects`; it stalled before).

mod support;

use std::pin::pin;

use futures::poll;
use serde_json::json;

use _core::internals::{Budget, Error, ObjectStart, ObjectStream, Part, Result};
use support::server::{Object, TestServer};
use support::{
    assert_bytes, budget_refilled, consume, listed, runtime, session, stream, to_vec, unlisted, MIB,
};

/// Objects pushed in order come out in that order and whole, whatever order the server answers
/// in. It holds every request; the test lets the later objects' through first, last one
/// first, and each of the first two objects' only once the consumer is waiting for it — so a
/// stream handing out whatever has arrived would return a later object.
#[test]
fn objects_come_out_in_push_order_whatever_order_the_server_answers() {
    let server = TestServer::start();
    let config = json!({"datasetConfig": {"prefetchConcurrency": 16, "prefetchUnitMB": 1}});
    let session = session(&server, "order", config);
    let runtime = runtime(&session);
    let budget = Budget::new(64 * MIB as u64);
    let sizes = [
        ("a", 100 * 1024),
        ("b", 300 * 1024 + 7),
        ("large", 3 * MIB + MIB / 2),
        ("c", 1),
        ("d", 64 * 1024),
    ];
    let objects: Vec<_> = sizes.iter().map(|(k, n)| (*k, server.put(k, *n))).collect();
    let gate_a = server.hold("a", 0);
    let gate_b = server.hold("b", 0);
    // One gate per request of the later objects (`large` is asked for in four ranged parts),
    // last request first.
    let mut later = Vec::new();
    for (key, object) in &objects[2..] {
        for start in (0..object.content.len() as u64).step_by(MIB) {
            later.push((*key, start, server.hold(key, start)));
        }
    }
    later.reverse();

    let mut stream = stream(&session, &budget);
    for (key, object) in &objects {
        stream.push(listed(key, object));
    }
    consume(&runtime, "ordered reads", async {
        let a = {
            let mut next = pin!(stream.next_object());
            assert!(poll!(next.as_mut()).is_pending(), "a is held");
            for (key, start, gate) in &later {
                gate.open();
                let what = format!("{key} from {start} is answered");
                server
                    .wait_until(&what, |s| {
                        s.answered(key, *start, 200) || s.answered(key, *start, 206)
                    })
                    .await;
            }
            gate_a.open();
            next.await
        };
        expect_object(&mut stream, a, &objects[0]).await;
        let b = {
            let mut next = pin!(stream.next_object());
            assert!(poll!(next.as_mut()).is_pending(), "b is held");
            gate_b.open();
            next.await
        };
        expect_object(&mut stream, b, &objects[1]).await;
        for object in &objects[2..] {
            let next = stream.next_object().await;
            expect_object(&mut stream, next, object).await;
        }
        assert!(
            stream.next_object().await.is_none(),
            "nothing more was pushed"
        );
        budget_refilled(&budget).await;
    });
    let stats = server.stats();
    let answered: Vec<(&str, u64)> = stats
        .answers
        .iter()
        .map(|a| (a.request.key.as_str(), a.request.start()))
        .collect();
    let mut order: Vec<(&str, u64)> = later.iter().map(|(k, s, _)| (*k, *s)).collect();
    order.extend([("a", 0), ("b", 0)]);
    assert_eq!(answered, order, "the server answered later objects first");
}

/// Asserts that `next` is `object` (listed) and that its parts follow in offset order, one per
/// part size, and make up its bytes.
async fn expect_object(
    stream: &mut ObjectStream,
    next: Option<Result<ObjectStart>>,
    (key, object): &(&str, Object),
) {
    let start = next.expect("one object per push").expect("the object");
    assert_eq!(start.key, *key, "objects out of push order");
    assert_eq!(start.bucket, support::BUCKET);
    assert_eq!(start.label, format!("label of {key}"));
    assert_eq!(start.size, object.content.len() as u64);
    assert_eq!(start.etag, object.etag);
    assert_eq!(start.first.offset, 0);
    let mut bytes = to_vec(&start.first.body);
    let mut offsets = vec![0];
    while let Some(part) = stream.next_part(start.seq).await {
        let part = part.expect("a part");
        assert_eq!(part.offset, bytes.len() as u64, "{key}: parts out of order");
        offsets.push(part.offset);
        bytes.extend_from_slice(&to_vec(&part.body));
    }
    assert_bytes(key, &bytes, &object.content);
    let parts: Vec<u64> = (0..object.content.len() as u64).step_by(MIB).collect();
    assert_eq!(offsets, parts, "{key}: one part per part size");
}

/// Taking the next object while the parts of a large one are held by the server aborts them
/// (the server sees their connections closed), never requests its parts not yet started, and
/// gives their budget back while the stream is still alive.
#[test]
fn moving_past_an_object_cancels_its_remaining_parts() {
    let server = TestServer::start();
    let config = json!({"datasetConfig": {"prefetchConcurrency": 2, "prefetchUnitMB": 1}});
    let session = session(&server, "cancel", config);
    let runtime = runtime(&session);
    let budget = Budget::new(16 * MIB as u64);
    let big = server.put("big", 5 * MIB);
    let next = server.put("next", 64 * 1024);
    let _held = server.hold("big", MIB as u64);

    let mut stream = stream(&session, &budget);
    stream.push(listed("big", &big));
    stream.push(listed("next", &next));
    consume(&runtime, "moving past a held object", async {
        let first = stream.next_object().await.expect("big").expect("big");
        assert_eq!(first.key, "big");
        assert_bytes(
            "big's first part",
            &to_vec(&first.first.body),
            &big.content[..MIB],
        );
        // Two requests at a time: parts 1 and 2 are under way (held), 3 and 4 wait.
        server
            .wait_until("parts 1 and 2 of big are held", |s| {
                s.requested("big", MIB as u64) && s.requested("big", 2 * MIB as u64)
            })
            .await;

        let second = stream.next_object().await.expect("next").expect("next");
        assert_eq!(second.key, "next");
        assert_bytes("next", &to_vec(&second.first.body), &next.content);
        assert!(
            stream.next_part(first.seq).await.is_none(),
            "the stream moved past big: it has no more parts to give"
        );
        server
            .wait_until("the held parts of big are given up", |s| {
                s.was_dropped("big", MIB as u64) && s.was_dropped("big", 2 * MIB as u64)
            })
            .await;
        drop((first, second));
        budget_refilled(&budget).await;
        assert!(stream.next_object().await.is_none());
    });
    drop(stream);
    let stats = server.stats();
    let mut big_starts: Vec<u64> = stats
        .requests_for("big")
        .iter()
        .map(|r| r.start())
        .collect();
    big_starts.sort_unstable();
    assert_eq!(
        big_starts,
        [0, MIB as u64, 2 * MIB as u64],
        "parts not yet started when the stream moved on must never be requested"
    );
    assert_eq!(
        stats.dropped.len(),
        2,
        "only the two held parts are given up"
    );
    assert_eq!(stats.in_flight, 0);
}

/// With a budget of four parts and twice as many requests allowed, the server never has more
/// than four requests in flight, and the whole budget comes back at the end. Every request is
/// held until the consumer wants its object and the pipeline has had the chance to fill the
/// budget, so that a pipeline over its budget would be caught with more requests at the server.
#[test]
fn requests_in_flight_never_exceed_the_budget() {
    let server = TestServer::start();
    let config = json!({"datasetConfig": {"prefetchConcurrency": 8, "prefetchUnitMB": 1}});
    let session = session(&server, "budget", config);
    let runtime = runtime(&session);
    let budget = Budget::new(4 * MIB as u64);
    let count = 12;
    let keys: Vec<String> = (0..count).map(|i| format!("obj-{i:02}")).collect();
    let objects: Vec<_> = keys.iter().map(|k| server.put(k, MIB)).collect();
    let gates: Vec<_> = keys.iter().map(|k| server.hold(k, 0)).collect();

    let mut stream = stream(&session, &budget);
    for (key, object) in keys.iter().zip(&objects) {
        stream.push(listed(key, object));
    }
    consume(&runtime, "reads within the budget", async {
        for i in 0..count {
            // The pipeline fills the budget (four objects) before the consumer's is let through.
            let last_fitting = &keys[(i + 3).min(count - 1)];
            let release = async {
                let what = format!("{last_fitting} is requested");
                server
                    .wait_until(&what, |s| s.requested(last_fitting, 0))
                    .await;
                gates[i].open();
            };
            let (start, ()) = tokio::join!(stream.next_object(), release);
            let start = start.expect("an object").expect("the object");
            assert_eq!(start.key, keys[i]);
            assert_bytes(&keys[i], &to_vec(&start.first.body), &objects[i].content);
            let available = budget.available();
            assert!(
                (0..=3 * MIB as i64).contains(&available),
                "the consumer holds one part: {available} bytes available"
            );
        }
        assert!(stream.next_object().await.is_none());
        budget_refilled(&budget).await;
    });
    let stats = server.stats();
    assert_eq!(stats.answers.len(), count, "one whole GET per object");
    assert_eq!(
        stats.max_in_flight, 4,
        "a 4 MiB budget allows four 1 MiB requests at once, no more"
    );
}

/// Requests aborted while held by the server, or while backing off after a 503, must give back
/// their running slot: with two requests at a time, skipping two objects whose parts are stuck
/// must leave the pipeline able to fetch the objects after them. (A leaked count would stall
/// it for good; `consume` turns the stall into a failure.)
#[test]
fn aborted_requests_give_back_their_running_slots() {
    let server = TestServer::start();
    let config = json!({
        "datasetConfig": {"prefetchConcurrency": 2, "prefetchUnitMB": 1},
        "retryConfig": {"maxAttempts": 100},
    });
    let session = session(&server, "running", config);
    let runtime = runtime(&session);
    let budget = Budget::new(32 * MIB as u64);
    let held = server.put("held", 3 * MIB);
    let refused = server.put("refused", 3 * MIB);
    let _gate = server.hold("held", MIB as u64);
    server.unavailable("refused", MIB as u64);
    let after: Vec<_> = (0..4)
        .map(|i| {
            (
                format!("after-{i}"),
                server.put(&format!("after-{i}"), 256 * 1024),
            )
        })
        .collect();

    let mut stream = stream(&session, &budget);
    stream.push(listed("held", &held));
    stream.push(listed("refused", &refused));
    for (key, object) in &after {
        stream.push(listed(key, object));
    }
    let (one, two) = (MIB as u64, 2 * MIB as u64);
    consume(&runtime, "objects after aborted requests", async {
        let first = stream.next_object().await.expect("held").expect("held");
        assert_eq!(first.key, "held");
        server
            .wait_until("both running requests are held", |s| {
                s.requested("held", one) && s.requested("held", two)
            })
            .await;

        let second = stream
            .next_object()
            .await
            .expect("refused")
            .expect("refused");
        assert_eq!(second.key, "refused");
        server
            .wait_until("both running requests got a 503 (and back off)", |s| {
                s.answered("refused", one, 503) && s.answered("refused", two, 503)
            })
            .await;

        for (key, object) in &after {
            let start = stream.next_object().await.expect("an object").expect(key);
            assert_eq!(start.key, *key);
            assert_bytes(key, &to_vec(&start.first.body), &object.content);
        }
        assert!(stream.next_object().await.is_none());
        drop((first, second));
        budget_refilled(&budget).await;
        server
            .wait_until("the held requests are given up", |s| {
                s.was_dropped("held", one) && s.was_dropped("held", two)
            })
            .await;
    });
}

/// An object listed with its size and ETag, replaced after its first part was taken: the next
/// part fails with `Error::Changed` (the server's 412 to `If-Match`), and nothing of the new
/// version is ever returned.
#[test]
fn a_listed_object_replaced_between_parts_fails_with_changed() {
    let server = TestServer::start();
    let config = json!({"datasetConfig": {"prefetchUnitMB": 1}});
    let session = session(&server, "pinned-listed", config);
    let runtime = runtime(&session);
    let budget = Budget::new(16 * MIB as u64);
    let old = server.put("obj", 3 * MIB);
    let gate = server.hold("obj", MIB as u64);

    let mut stream = stream(&session, &budget);
    stream.push(listed("obj", &old));
    consume(&runtime, "a replaced listed object", async {
        let start = stream.next_object().await.expect("obj").expect("obj");
        assert_eq!(start.etag, old.etag);
        assert_bytes(
            "first part",
            &to_vec(&start.first.body),
            &old.content[..MIB],
        );
        server
            .wait_until("the other parts are asked for", |s| {
                s.requested("obj", MIB as u64) && s.requested("obj", 2 * MIB as u64)
            })
            .await;
        let new = server.replace("obj");
        assert_ne!(new.etag, old.etag);
        gate.open();

        expect_changed(stream.next_part(start.seq).await, &old.etag, &server);
        assert!(
            stream.next_part(start.seq).await.is_none(),
            "after a part failed, the rest of the object is cancelled"
        );
        assert!(stream.next_object().await.is_none());
        drop(start);
        budget_refilled(&budget).await;
    });
    let stats = server.stats();
    for request in stats.requests_for("obj") {
        assert_eq!(
            request.if_match.as_deref(),
            Some(old.etag.as_str()),
            "every part is pinned to the listed ETag: {request:?}"
        );
    }
}

/// An object pushed with neither size nor ETag is asked for by its first part; the answer tells
/// its size and ETag, and the rest is pinned to that ETag: once the object is replaced, the next
/// part fails with `Error::Changed`.
#[test]
fn an_unlisted_object_is_pinned_to_its_first_answer() {
    let server = TestServer::start();
    let config = json!({"datasetConfig": {"prefetchUnitMB": 1}});
    let session = session(&server, "pinned-unlisted", config);
    let runtime = runtime(&session);
    let budget = Budget::new(16 * MIB as u64);
    let old = server.put("obj", 3 * MIB);
    let gate = server.hold("obj", MIB as u64);

    let mut stream = stream(&session, &budget);
    stream.push(unlisted("obj"));
    consume(&runtime, "a replaced unlisted object", async {
        let start = stream.next_object().await.expect("obj").expect("obj");
        assert_eq!(
            start.size,
            3 * MIB as u64,
            "the first answer tells the size"
        );
        assert_eq!(start.etag, old.etag, "and the version");
        assert_bytes(
            "first part",
            &to_vec(&start.first.body),
            &old.content[..MIB],
        );
        server
            .wait_until("the other parts are asked for", |s| {
                s.requested("obj", MIB as u64) && s.requested("obj", 2 * MIB as u64)
            })
            .await;
        server.replace("obj");
        gate.open();

        expect_changed(stream.next_part(start.seq).await, &old.etag, &server);
        assert!(stream.next_part(start.seq).await.is_none());
        assert!(stream.next_object().await.is_none());
        drop(start);
        budget_refilled(&budget).await;
    });
    let stats = server.stats();
    let requests = stats.requests_for("obj");
    assert_eq!(
        (requests[0].range, requests[0].if_match.as_deref()),
        (Some((0, Some(MIB as u64 - 1))), None),
        "the first request asks for one part of whatever version there is"
    );
    for request in &requests[1..] {
        assert_eq!(request.if_match.as_deref(), Some(old.etag.as_str()));
    }
}

/// The same replacement against a server that ignores `If-Match`: the client sees the new ETag
/// on the answer and still fails with `Error::Changed` rather than return the new bytes.
#[test]
fn a_replaced_object_is_caught_even_if_the_server_ignores_if_match() {
    let server = TestServer::start();
    server.ignore_if_match();
    let config = json!({"datasetConfig": {"prefetchUnitMB": 1}});
    let session = session(&server, "pinned-ignored", config);
    let runtime = runtime(&session);
    let budget = Budget::new(16 * MIB as u64);
    let old = server.put("obj", 2 * MIB + 5);
    let gate = server.hold("obj", MIB as u64);

    let mut stream = stream(&session, &budget);
    stream.push(listed("obj", &old));
    consume(&runtime, "a replaced object, If-Match ignored", async {
        let start = stream.next_object().await.expect("obj").expect("obj");
        server
            .wait_until("the other parts are asked for", |s| {
                s.requested("obj", MIB as u64) && s.requested("obj", 2 * MIB as u64)
            })
            .await;
        server.replace("obj");
        gate.open();
        match stream.next_part(start.seq).await {
            Some(Err(Error::Changed { etag, .. })) => assert_eq!(etag, old.etag),
            Some(Ok(part)) => panic!("bytes of another version at offset {}", part.offset),
            other => panic!("expected Error::Changed, got {other:?}"),
        }
        assert!(stream.next_part(start.seq).await.is_none());
    });
    let refusals = server
        .stats()
        .answers
        .iter()
        .filter(|a| a.status != 206)
        .count();
    assert_eq!(
        refusals, 0,
        "the server refused nothing: the check was the client's"
    );
}

/// Asserts that `part` is the `Error::Changed` of a 412 the server sent for a read pinned to
/// `etag`.
fn expect_changed(part: Option<Result<Part>>, etag: &str, server: &TestServer) {
    match part {
        Some(Err(Error::Changed {
            target,
            etag: pinned,
            request_id,
        })) => {
            assert_eq!(target.key, "obj");
            assert_eq!(
                pinned, etag,
                "the error names the version the read started on"
            );
            let refused =
                server.stats().answers.iter().any(|a| {
                    a.status == 412 && a.request_id == request_id && a.request.start() > 0
                });
            assert!(
                refused,
                "{request_id:?} is not the id of a 412 the server sent"
            );
        }
        Some(Ok(part)) => panic!("bytes of another version at offset {}", part.offset),
        other => panic!("expected Error::Changed, got {other:?}"),
    }
}

/// The rest of an object pushed without a size is scheduled only once its first part has
/// arrived, behind the first requests of later objects, which have taken the budget by then.
/// The object being read may overdraw one part when nothing of it is in flight; without that,
/// a consumer holding the first part while it reads the others waited for ever.
#[test]
fn the_rest_of_an_unlisted_object_is_not_starved_by_later_objects() {
    let server = TestServer::start();
    let config = json!({"datasetConfig": {"prefetchConcurrency": 8, "prefetchUnitMB": 1}});
    let session = session(&server, "starved", config);
    let runtime = runtime(&session);
    let budget = Budget::new(4 * MIB as u64);
    let unlisted_object = server.put("x", 3 * MIB);
    let mut stream = stream(&session, &budget);
    stream.push(unlisted("x"));
    for i in 0..6 {
        let key = format!("y{i}");
        stream.push(listed(&key, &server.put(&key, MIB)));
    }
    consume(&runtime, "the rest of an unlisted object", async {
        let next = stream.next_object().await;
        expect_object(&mut stream, next, &("x", unlisted_object)).await;
    });
}
