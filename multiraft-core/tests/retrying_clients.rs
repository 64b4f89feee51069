//! A client that retries refused proposals at once, on the runtime the node's event loop
//! shares.

use multiraft_core::{Bytes, GroupId, ProposeError};

mod common;

use common::{WAIT, one_leader_with_api_queue, submit_all};

/// How many refusals the retrying client takes before it gives up: far more than a task's
/// cooperative budget (128 units in tokio), far fewer than would make the test slow when
/// the client never yields (each refusal takes well under a microsecond).
const MAX_REFUSALS: u64 = 100_000;

/// A proposal refused at once (`Busy`) still spends the task's cooperative budget, so a
/// client retrying at once on the one thread the node's loop also runs on yields to the
/// loop within its budget: the loop takes the queue, and a retry is accepted. Without that
/// the client spins until its bound (the loop never runs again), which is how 200,000
/// such clients held `bench`'s runtime for good.
#[tokio::test]
async fn a_client_retrying_refusals_at_once_lets_the_loop_run() {
    let (mut c, node) = one_leader_with_api_queue(2).await;
    // Two proposals fill the queue; this task has not yielded since, so the loop has not
    // taken them.
    let mut fillers: Vec<_> = (0..2)
        .map(|i| Box::pin(node.propose(GroupId(1), format!("f{i}"))))
        .collect();
    assert_eq!(
        submit_all(&mut fillers),
        [None, None],
        "queued, not answered"
    );
    let mut refused = 0;
    let answer = loop {
        match node.propose(GroupId(1), "retried").await {
            Err(ProposeError::Busy {
                limit: "max_api_queue",
            }) if refused < MAX_REFUSALS => refused += 1,
            answer => break answer,
        }
    };
    assert!(answer.is_ok(), "{answer:?} after {refused} refusals");
    assert!(refused > 0, "the queue was full when the retries began");
    for f in fillers {
        let r = tokio::time::timeout(WAIT, f).await.expect("no hang");
        assert!(r.is_ok(), "{r:?}");
    }
    let applied: Vec<Bytes> = c.applied(1, 1).into_iter().map(|(_, b)| b).collect();
    assert_eq!(applied, ["f0", "f1", "retried"]);
    c.shutdown().await;
}

/// The same for `propose_many`: a batch refused at once because the queue's bytes are full
/// (`max_api_queue_bytes`) spends the task's budget too. Regression (review): a refused
/// first call awaited nothing, so a client retrying batches at once never yielded.
#[tokio::test]
async fn a_client_retrying_refused_batches_at_once_lets_the_loop_run() {
    let mut config = common::test_config();
    // Two 32-byte commands, each counted with its handle.
    config.max_api_queue_bytes = 2 * (32 + multiraft_core::COMMAND_OVERHEAD_BYTES);
    config.max_proposal_bytes = 32;
    let mut c = common::Cluster::start(1, config).await;
    c.create([1]).await;
    c.leader(1).await;
    let node = c.node(1).clone();
    let full = Bytes::from(vec![b'f'; 32]);
    let mut fillers: Vec<_> = (0..2)
        .map(|_| Box::pin(node.propose(GroupId(1), full.clone())))
        .collect();
    assert_eq!(submit_all(&mut fillers), [None, None], "queued: full");
    let busy = Err(ProposeError::Busy {
        limit: "max_api_queue_bytes",
    });
    let mut refused = 0;
    let answer = loop {
        let answers = node
            .propose_many(GroupId(1), vec![Bytes::from("retried")])
            .await;
        match answers.as_slice() {
            [answer] if *answer == busy && refused < MAX_REFUSALS => refused += 1,
            _ => break answers,
        }
    };
    assert!(answer[0].is_ok(), "{answer:?} after {refused} refusals");
    assert!(refused > 0, "the queue was full when the retries began");
    for f in fillers {
        let r = tokio::time::timeout(WAIT, f).await.expect("no hang");
        assert!(r.is_ok(), "{r:?}");
    }
    c.shutdown().await;
}
