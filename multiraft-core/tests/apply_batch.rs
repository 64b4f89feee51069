//! `StateMachine::apply_batch`: each group's commands of one cycle reach its machine as one
//! batch, their results answer the right proposals, and a machine that breaks the batch
//! contract stops the node instead of answering wrongly.

use std::sync::{Arc, Mutex};

use multiraft_core::{
    Bytes, GroupId, Indeterminate, MultiRaft, NodeId, ProposeError, StateMachine, StopError,
};
use multiraft_testkit::{MemNetwork, MemStorage};

mod common;

use common::{WAIT, lead_group_1_alone, test_config};

/// Answers each command with its index, records the size of every batch, and — when
/// `drop_last` is set — leaves the last result of each batch out.
struct Batching {
    batches: Arc<Mutex<Vec<usize>>>,
    drop_last: bool,
}

impl StateMachine for Batching {
    fn apply(&mut self, index: u64, _command: &Bytes) -> Bytes {
        Bytes::from(index.to_string())
    }

    fn apply_batch(
        &mut self,
        commands: &mut dyn Iterator<Item = (u64, &Bytes)>,
        results: &mut Vec<Bytes>,
    ) {
        let before = results.len();
        results.extend(commands.map(|(index, _)| Bytes::from(index.to_string())));
        let size = results.len() - before;
        self.batches.lock().unwrap().push(size);
        if self.drop_last {
            results.pop();
        }
    }

    fn query(&self, _query: &Bytes) -> Bytes {
        Bytes::new()
    }
}

/// A one-node group on in-memory parts whose machines are `Batching`; returns the node once
/// it leads group 1.
async fn single_node(batches: &Arc<Mutex<Vec<usize>>>, drop_last: bool) -> MultiRaft {
    let batches = Arc::clone(batches);
    let node = MultiRaft::builder(NodeId(1), test_config())
        .storage(MemStorage::new())
        .transport(MemNetwork::new().transport(NodeId(1)))
        .state_machines(move |_| Batching {
            batches: Arc::clone(&batches),
            drop_last,
        })
        .seed(7)
        .start()
        .await
        .unwrap();
    lead_group_1_alone(&node).await;
    node
}

/// The 64 commands of one `propose_many` commit in one cycle and reach the machine in as
/// few batches, each command answered with its own result (its index, in log order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_commands_of_one_cycle_reach_its_machine_as_one_batch() {
    let batches = Arc::new(Mutex::new(Vec::new()));
    let node = single_node(&batches, false).await;
    let commands = vec![Bytes::from_static(b"x"); 64];
    let results = node.propose_many(GroupId(1), commands).await;
    let indexes: Vec<u64> = results
        .into_iter()
        .map(|r| {
            String::from_utf8(r.unwrap().to_vec())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(indexes.len(), 64);
    assert!(indexes.windows(2).all(|w| w[1] == w[0] + 1), "{indexes:?}");
    let batches = batches.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), 64, "{batches:?}");
    assert!(
        batches.iter().any(|&b| b > 1),
        "one command per batch: {batches:?}"
    );
    node.shutdown().await.unwrap();
}

/// A machine that gives back fewer results than it was given commands stops the node with a
/// typed error; the proposal it was answering is not answered with a wrong result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_answering_too_few_commands_stops_the_node() {
    let batches = Arc::new(Mutex::new(Vec::new()));
    let node = single_node(&batches, true).await;
    let result = tokio::time::timeout(WAIT, node.propose(GroupId(1), "x"))
        .await
        .expect("the proposal is answered");
    assert!(
        matches!(
            result,
            Err(ProposeError::Indeterminate(Indeterminate::NodeStopped) | ProposeError::Stopped)
        ),
        "{result:?}"
    );
    let stopped = node.shutdown().await;
    assert!(
        matches!(
            stopped,
            Err(StopError::StateMachine {
                group: GroupId(1),
                commands: 1,
                results: 0
            })
        ),
        "{stopped:?}"
    );
}
