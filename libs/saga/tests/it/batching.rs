//! Set-based remote steps: the calls that concurrent sagas make to one step go together in one
//! batched call, each saga answered on its own; a lone saga's call goes at once, on its own.

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::harness::{Harness, Script, fast_config};

fn script(one: &str) -> Script {
    Script {
        actions: HashMap::from([("One".to_owned(), vec![one.to_owned()])]),
        compensations: HashMap::new(),
        batch_fails: false,
    }
}

#[tokio::test]
async fn a_lone_saga_calls_at_once_without_a_batch() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let engine = h.engine(fast_config(), &shutdown);
    let id = h.start(&engine, Script::default(), true).await;
    let (status, _, _) = h.wait_terminal(id).await;
    assert_eq!(status, "COMPLETED");
    assert_eq!(
        h.calls(id),
        [
            ("One".into(), false),
            ("Two".into(), false),
            ("Three".into(), false)
        ]
    );
    // nothing waited for company: every call was the saga's own single call
    assert!(h.recorder.batches.lock().expect("lock").is_empty());
    shutdown.cancel();
}

#[tokio::test]
async fn concurrent_sagas_share_calls_and_each_gets_its_own_outcome() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let engine = h.engine(fast_config(), &shutdown);
    // the first saga's call to One pauses, so the others reach One while it is in flight and go
    // together in the next call; every fifth is refused at One
    let first = h.start(&engine, script("pause"), true).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let behaviour = if i % 5 == 0 { "reject" } else { "ok" };
        ids.push(h.start(&engine, script(behaviour), true).await);
    }
    assert_eq!(h.wait_terminal(first).await.0, "COMPLETED");
    for (i, id) in ids.iter().enumerate() {
        let (status, reason, _) = h.wait_terminal(*id).await;
        if i % 5 == 0 {
            assert_eq!(
                (status.as_str(), reason.as_deref()),
                ("COMPENSATED", Some("insufficient_stock")),
                "saga {i}"
            );
            // refused at One: nothing to compensate, nothing else called
            assert_eq!(h.calls(*id), [("One".into(), false)], "saga {i}");
        } else {
            assert_eq!(status, "COMPLETED", "saga {i}");
            assert_eq!(
                h.calls(*id),
                [
                    ("One".into(), false),
                    ("Two".into(), false),
                    ("Three".into(), false)
                ],
                "saga {i}: each step once"
            );
        }
    }
    let batches = h.recorder.batches.lock().expect("lock").clone();
    let largest_one = batches
        .iter()
        .filter(|(step, compensation, _)| step == "One" && !compensation)
        .map(|(_, _, n)| *n)
        .max()
        .unwrap_or(0);
    assert!(
        largest_one > 1,
        "the sagas that waited behind the paused call went together: {batches:?}"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn a_batched_call_that_fails_as_a_whole_falls_back_to_each_sagas_own_call() {
    let h = Harness::new().await;
    let shutdown = CancellationToken::new();
    let engine = h.engine(fast_config(), &shutdown);
    // the first saga holds the caller of One; the others queue behind it and go together, and
    // one of them makes that batched call fail as a whole
    let first = h.start(&engine, script("pause"), true).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let mut s = script("ok");
        s.batch_fails = i == 3;
        ids.push(h.start(&engine, s, true).await);
    }
    assert_eq!(h.wait_terminal(first).await.0, "COMPLETED");
    for (i, id) in ids.iter().enumerate() {
        let (status, _, _) = h.wait_terminal(*id).await;
        assert_eq!(status, "COMPLETED", "saga {i}");
        // the failed batch made no call; each saga then made its own, once per step
        assert_eq!(
            h.calls(*id),
            [
                ("One".into(), false),
                ("Two".into(), false),
                ("Three".into(), false)
            ],
            "saga {i}"
        );
    }
    let batches = h.recorder.batches.lock().expect("lock").clone();
    assert!(
        batches.iter().any(|(step, _, n)| step == "One" && *n > 1),
        "the queued sagas went together at One: {batches:?}"
    );
    shutdown.cancel();
}
