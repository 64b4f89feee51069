//! How the runner prints what the nodes did: status lines, readies, messages and entries
//! (the script format in the parent module's docs).

use super::*;

impl World {
    /// One line per node and group, group by group.
    pub(super) fn status(&self, groups: &[GroupId]) -> String {
        let mut out = String::new();
        for group in groups {
            for (n, node) in &self.nodes {
                self.status_line(*group, *n, node.as_ref(), &mut out);
            }
        }
        out
    }

    pub(super) fn status_line(
        &self,
        group: GroupId,
        n: u64,
        node: Option<&Node>,
        out: &mut String,
    ) {
        let tag = self.tag(group);
        let Some(node) = node else {
            let _ = writeln!(out, "{tag}{n}: crashed");
            return;
        };
        let Some(s) = node.group_status(group) else {
            let _ = writeln!(out, "{tag}{n}: no group");
            return;
        };
        let quiet = node.replica(group).is_some_and(|g| g.is_quiesced());
        let _ = writeln!(
            out,
            "{tag}{n}: {:?} term={} vote={} leader={} last={} commit={} applied={}{}",
            s.role,
            s.term,
            s.vote.map_or("-".to_string(), |v| v.0.to_string()),
            s.leader.map_or("-".to_string(), |v| v.0.to_string()),
            s.last_index,
            s.commit,
            s.applied,
            if quiet { " quiesced" } else { "" }
        );
    }

    pub(super) fn print_ready(&self, n: u64, ready: &Ready, out: &mut String) {
        let _ = writeln!(out, "> {n} ready {}", ready.number);
        for w in &ready.write.groups {
            let tag = self.tag(w.group);
            if let Some(hs) = w.hard_state {
                let vote = hs.vote.map_or("-".to_string(), |v| v.0.to_string());
                let _ = writeln!(
                    out,
                    "  hs: {tag}term={} vote={vote} commit={}",
                    hs.term, hs.commit
                );
            }
            if !w.entries.is_empty() {
                let list: Vec<String> = w.entries.iter().map(|e| self.fmt_entry(e)).collect();
                let _ = writeln!(out, "  entries: {tag}{}", list.join(", "));
            }
        }
        for (label, batches) in [
            ("send-now", &ready.send_now),
            ("after-write", &ready.send_after_write),
        ] {
            for m in batches.iter().flat_map(|b| &b.messages) {
                let _ = writeln!(out, "  {label}: {}", self.fmt_message(m));
            }
        }
        // One line per group: a group's applies may come as several, one per run of its
        // log, which is how the log keeps them, not what the script is about.
        for same in ready.apply.chunk_by(|a, b| a.group == b.group) {
            let list: Vec<String> = same
                .iter()
                .flat_map(|a| a.entries.iter())
                .map(|e| self.fmt_entry(e))
                .collect();
            let _ = writeln!(
                out,
                "  apply: {}{}",
                self.tag(same[0].group),
                list.join(", ")
            );
        }
        for r in &ready.reads {
            let text = self.fmt_text(ProposalId {
                node: NodeId(n),
                seq: r.request.0,
            });
            let _ = writeln!(out, "  read: {}{text} index={}", self.tag(r.group), r.index);
        }
        for o in &ready.outcomes {
            let id = ProposalId {
                node: NodeId(n),
                seq: o.request.0,
            };
            let text = self.fmt_text(id);
            let tag = self.tag(o.group);
            match &o.resolution {
                Resolution::Rejected(e) => {
                    let _ = writeln!(out, "  rejected: {tag}{text} {e:?}");
                }
                Resolution::Indeterminate(why) => {
                    let _ = writeln!(out, "  indeterminate: {tag}{text} {why:?}");
                }
                Resolution::ReadFailed(e) => {
                    let _ = writeln!(out, "  read failed: {tag}{text} {e:?}");
                }
                Resolution::TransferFailed(e) => {
                    let _ = writeln!(out, "  transfer failed: {tag}{text} {e:?}");
                }
                Resolution::MembershipChanged(m) => {
                    let m = fmt_membership(m);
                    let _ = writeln!(out, "  membership changed: {tag}{text} {m}");
                }
                Resolution::MembershipChangeFailed(e) => {
                    let _ = writeln!(out, "  membership change failed: {tag}{text} {e:?}");
                }
                Resolution::Done
                    if self
                        .texts
                        .get(&id)
                        .is_some_and(|t| t.starts_with("transfer")) =>
                {
                    let _ = writeln!(out, "  transferred: {tag}{text}");
                }
                _ => {}
            }
        }
        for e in &ready.events {
            match e {
                Event::LeaderChanged {
                    group,
                    term,
                    leader,
                } => {
                    let l = leader.map_or("-".to_string(), |l| l.0.to_string());
                    let tag = self.tag(*group);
                    let _ = writeln!(out, "  event: {tag}term={term} leader={l}");
                }
                Event::MembershipChanged { group, membership } => {
                    let tag = self.tag(*group);
                    let m = fmt_membership(membership);
                    let _ = writeln!(out, "  event: {tag}membership {m}");
                }
                Event::ReplicaRemoved { group } => {
                    let tag = self.tag(*group);
                    let _ = writeln!(out, "  event: {tag}removed");
                }
                _ => {}
            }
        }
    }

    pub(super) fn fmt_text(&self, id: ProposalId) -> String {
        format!("{:?}", self.texts.get(&id).map_or("?", String::as_str))
    }

    pub(super) fn fmt_entry(&self, e: &Entry) -> String {
        match &e.payload {
            Payload::Noop => format!("{}/{} noop", e.term, e.index),
            Payload::Command { id, .. } => {
                format!("{}/{} {}", e.term, e.index, self.fmt_text(*id))
            }
            Payload::Membership(m) => format!("{}/{} conf {}", e.term, e.index, fmt_membership(m)),
            _ => format!("{}/{} ?", e.term, e.index),
        }
    }

    pub(super) fn fmt_message(&self, m: &Message) -> String {
        // Node-level messages (coalesced heartbeats) name the group of each item instead.
        let tag = if m.group == GroupId::NODE {
            String::new()
        } else {
            self.tag(m.group)
        };
        let head = format!("{}->{} {tag}", m.from.0, m.to.0);
        let body = match &m.body {
            MessageBody::Vote {
                pre_vote,
                last_index,
                last_term,
                transfer,
            } => format!(
                "{} term={} last={last_term}/{last_index}{}",
                if *pre_vote { "PreVote" } else { "Vote" },
                m.term,
                if *transfer { " transfer" } else { "" }
            ),
            MessageBody::VoteResponse { pre_vote, granted } => format!(
                "{} term={} {}",
                if *pre_vote {
                    "PreVoteResponse"
                } else {
                    "VoteResponse"
                },
                m.term,
                if *granted { "granted" } else { "rejected" }
            ),
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                let list: Vec<String> = entries.iter().map(|e| self.fmt_entry(e)).collect();
                format!(
                    "Append term={} prev={prev_term}/{prev_index} commit={commit} [{}]",
                    m.term,
                    list.join(", ")
                )
            }
            MessageBody::AppendResponse {
                success: true,
                index,
                ..
            } => format!("AppendResponse term={} ok index={index}", m.term),
            MessageBody::AppendResponse {
                index,
                hint_index,
                hint_term,
                ..
            } => format!(
                "AppendResponse term={} reject index={index} hint={hint_term}/{hint_index}",
                m.term
            ),
            MessageBody::Heartbeat { commit, .. } => {
                format!("Heartbeat term={} commit={commit}", m.term)
            }
            MessageBody::HeartbeatResponse { .. } => format!("HeartbeatResponse term={}", m.term),
            MessageBody::Quiesce { commit, .. } => {
                format!("Quiesce term={} commit={commit}", m.term)
            }
            MessageBody::TimeoutNow => format!("TimeoutNow term={}", m.term),
            MessageBody::ReadIndex { ids } => format!("ReadIndex {ids:?}"),
            MessageBody::ReadIndexResponse { ids, index } => {
                format!("ReadIndexResponse {ids:?} index={index:?}")
            }
            MessageBody::Heartbeats { beats, .. } => {
                let list: Vec<String> = beats
                    .iter()
                    .map(|b| {
                        let q = if b.quiesce { " quiesce" } else { "" };
                        format!("{} term={} commit={}{q}", b.group, b.term, b.commit)
                    })
                    .collect();
                format!("Heartbeats [{}]", list.join(", "))
            }
            MessageBody::HeartbeatAcks { acks } => {
                let list: Vec<String> = acks
                    .iter()
                    .map(|a| format!("{} term={}", a.group, a.term))
                    .collect();
                format!("HeartbeatAcks [{}]", list.join(", "))
            }
            MessageBody::Propose { proposals } => {
                let list: Vec<String> =
                    proposals.iter().map(|(id, _)| self.fmt_text(*id)).collect();
                format!("Propose [{}]", list.join(", "))
            }
            MessageBody::ProposeRejected {
                ids, leader_hint, ..
            } => {
                let list: Vec<String> = ids.iter().map(|id| self.fmt_text(*id)).collect();
                let l = leader_hint.map_or("-".to_string(), |l| l.0.to_string());
                format!("ProposeRejected [{}] leader={l}", list.join(", "))
            }
            MessageBody::Removed { index, matched } => {
                format!("Removed index={index} matched={matched}")
            }
            MessageBody::LogLost {
                last_index,
                last_term,
            } => format!("LogLost last={last_index} last_term={last_term}"),
            MessageBody::Unheard { replica, term } => {
                format!("Unheard replica={} term={term}", replica.0)
            }
            _ => "?".to_string(),
        };
        format!("{head}{body}")
    }
}

/// A membership as scripts show it: `voters=1,2,3`, then `outgoing=` and `learners=` when
/// not empty.
pub(super) fn fmt_membership(m: &Membership) -> String {
    let ids = |s: &std::collections::BTreeSet<NodeId>| {
        s.iter()
            .map(|n| n.0.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out = format!("voters={}", ids(&m.voters));
    if !m.outgoing.is_empty() {
        let _ = write!(out, " outgoing={}", ids(&m.outgoing));
    }
    if !m.learners.is_empty() {
        let _ = write!(out, " learners={}", ids(&m.learners));
    }
    out
}
