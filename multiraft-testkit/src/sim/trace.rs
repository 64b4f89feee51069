//! The tail of a run's trace, kept cheaply and formatted only when a violation prints it.

use std::collections::VecDeque;
use std::fmt::Write;

use multiraft_core::{MessageBatch, MessageBody, NodeId};

/// One line of the trace, formatted lazily.
pub(crate) enum TraceRec {
    Deliver {
        at_us: u64,
        batch: MessageBatch,
    },
    Ready {
        at_us: u64,
        node: NodeId,
        number: u64,
        writes: usize,
        entries: usize,
        applies: usize,
        sends: usize,
    },
    Note {
        at_us: u64,
        text: String,
    },
}

/// The last `cap` trace records.
pub(crate) struct Trace {
    cap: usize,
    recs: VecDeque<TraceRec>,
}

impl Trace {
    pub(crate) fn new(cap: usize) -> Trace {
        Trace {
            cap,
            recs: VecDeque::with_capacity(cap),
        }
    }

    pub(crate) fn push(&mut self, rec: TraceRec) {
        if self.cap == 0 {
            return;
        }
        if self.recs.len() == self.cap {
            self.recs.pop_front();
        }
        self.recs.push_back(rec);
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        self.recs.iter().map(format_rec).collect()
    }
}

fn time(at_us: u64) -> String {
    format!("{:>4}.{:06}s", at_us / 1_000_000, at_us % 1_000_000)
}

fn format_rec(r: &TraceRec) -> String {
    match r {
        TraceRec::Deliver { at_us, batch } => {
            let mut s = format!("{} deliver {}->{}:", time(*at_us), batch.from, batch.to);
            for m in &batch.messages {
                let _ = write!(s, " [{} t{} {}]", m.group, m.term, body(&m.body));
            }
            s
        }
        TraceRec::Ready {
            at_us,
            node,
            number,
            writes,
            entries,
            applies,
            sends,
        } => format!(
            "{} ready {node}#{number}: {writes} group writes, {entries} entries, {applies} applied, {sends} batches out",
            time(*at_us)
        ),
        TraceRec::Note { at_us, text } => format!("{} {text}", time(*at_us)),
    }
}

fn body(b: &MessageBody) -> String {
    match b {
        MessageBody::Vote {
            pre_vote,
            last_index,
            last_term,
            transfer,
        } => format!(
            "{}vote last {last_index}/{last_term}{}",
            if *pre_vote { "pre" } else { "" },
            if *transfer { " (transfer)" } else { "" }
        ),
        MessageBody::VoteResponse { pre_vote, granted } => format!(
            "{}vote {}",
            if *pre_vote { "pre" } else { "" },
            if *granted { "granted" } else { "rejected" }
        ),
        MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit,
        } => {
            let ents: Vec<String> = entries
                .iter()
                .map(|e| format!("{}/{}", e.index, e.term))
                .collect();
            format!(
                "append prev {prev_index}/{prev_term} [{}] commit {commit}",
                ents.join(",")
            )
        }
        MessageBody::AppendResponse {
            success,
            index,
            hint_index,
            hint_term,
            joined,
        } => {
            if *success {
                let joined = if *joined { "" } else { " (joining)" };
                format!("append ok {index}{joined}")
            } else {
                format!("append reject {index} hint {hint_index}/{hint_term}")
            }
        }
        MessageBody::Heartbeat { commit, round } => {
            format!("heartbeat commit {commit} round {round}")
        }
        MessageBody::HeartbeatResponse { round } => format!("heartbeat resp round {round}"),
        MessageBody::Propose { proposals } => format!("propose x{}", proposals.len()),
        MessageBody::ProposeRejected {
            ids, leader_hint, ..
        } => {
            format!("propose rejected x{} hint {leader_hint:?}", ids.len())
        }
        other => format!("{other:?}"),
    }
}
