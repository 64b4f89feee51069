//! Node liveness: which peer nodes this node shares a group with, and whether each is heard
//! from. Failure detection costs one beat per node pair per tick, not one per group
//! (docs/design.md §4), which is what lets idle groups quiesce.
//!
//! Silence is counted in ticks the node *served*, not in ticks of its clock: a node whose
//! event loop stalled serves one tick when it resumes, so its own stall never makes its
//! peers look silent. And each peer's timeout stretches to twice the longest silence it
//! recovered from lately (at most [`MAX_TIMEOUT_STRETCH`] timeouts): a peer whose loop
//! stalls under load is not declared down for the next stall of the same length. Its
//! timeout also stretches to twice the longest stall of this node's own loop lately: the
//! load that stalls this node most likely stalls its peers too, and a first stall of a peer
//! has no history of its own to go by (docs/design.md §4.3).

use std::collections::BTreeMap;

use crate::ids::NodeId;
use crate::membership::Membership;
use crate::message::{Liveness, ROUND_SEQ_BITS};

/// The longest a peer's timeout stretches, in liveness timeouts
/// (`Config::election_timeout_min_ticks`): bounds how late a dead node is noticed after
/// it stalled often, so that its groups still fail over within a few election timeouts.
pub(crate) const MAX_TIMEOUT_STRETCH: u64 = 8;

/// How often the longest silence a peer recovered from is halved, in liveness timeouts:
/// a peer that stopped stalling gets its usual timeout back within a few of these.
const STRETCH_DECAY_TIMEOUTS: u64 = 16;

/// Ticks in a row with beats of a life taken for a delayed one (lower than a peer's current
/// life, or the one before it), with none of the current life between, that make it the
/// live one. Ticks, not beats: one delayed batch may hold several heartbeat messages.
/// Incarnations grow from life to life (`Node::start_requests_at`), so such a beat is a
/// delayed message of an earlier life — unless lives were numbered out of order (a clock
/// set back across a restart); then the current life is silent and the other one beats
/// every tick. Three is past a few delayed batches that arrive together, and a few ticks
/// is all such a life waits to be heard.
const LOWER_LIFE_BEATS: u32 = 3;

/// What the node knows of one peer node.
#[derive(Debug)]
struct Peer {
    /// The served tick at which a batch from it last arrived.
    last_heard: u64,
    /// The longest silence, in served ticks, after which it was heard again lately
    /// (halved every [`STRETCH_DECAY_TIMEOUTS`] timeouts; zeroed when it restarts), counted
    /// up to half the stretch's cap: what stretches the timeout that far.
    longest_silence: u64,
    /// Heard from within its timeout ([`Peers::expire`]).
    live: bool,
    /// Its last batch stepped was refused unread (invalid or misaddressed): its batches'
    /// arrivals do not count ([`Peers::arrived`]) until one of them is stepped. A peer
    /// whose every batch is refused (other message limits, a broken transport) is then
    /// declared down as before, rather than kept live by batches nobody reads (review).
    unreadable: bool,
    /// How many hosted groups have a replica there; the peer is forgotten at zero.
    groups: usize,
    /// The peer's incarnation, once heard.
    incarnation: Option<u64>,
    /// The incarnation before that: a beat of it is a delayed message, not a restart.
    earlier_incarnation: Option<u64>,
    /// An incarnation taken for a delayed one (lower than the current one, or the one
    /// before it), at how many ticks in a row beats of it came with none of the current
    /// life between, and the last of those ticks: taken for the live one only at
    /// [`LOWER_LIFE_BEATS`].
    lower: (u64, u32, u64),
    /// The highest round received from the peer in that incarnation: echoed back to it.
    last_round: u64,
    /// The tick (of the node's clock) before which the peer's node is known to keep
    /// hearing this node: its echo of our round sent at tick `t` gives `t + lease_ticks`.
    lease_until: u64,
    /// The tick since which that lease has held without a break: a quiesced leader counts
    /// only a peer lease that held since before it went quiet.
    leased_since: u64,
}

impl Peer {
    /// Served ticks of silence after which the peer is declared down: the liveness
    /// `timeout`, stretched to twice the longest silence it recovered from lately, or
    /// twice `own_stall` (this node's own longest stall lately), whichever is longer.
    fn timeout(&self, timeout: u64, own_stall: u64) -> u64 {
        let cap = timeout.saturating_mul(MAX_TIMEOUT_STRETCH);
        self.longest_silence
            .max(own_stall)
            .saturating_mul(2)
            .clamp(timeout, cap.max(timeout))
    }
}

/// Which life of a peer sent a heartbeat message ([`Peers::beat`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Life {
    /// The life last heard (or the first heard, or a peer no group shares).
    Current,
    /// A new life: the peer restarted since it was last heard.
    New,
    /// A life before the current one (the one before it, or any numbered lower): a
    /// message delayed past the current life's. Nothing in it is news, its groups' beats
    /// included, nor in the rest of its batch: a late beat of a leader in that life undid
    /// what the restart's handling did (the follower took the old life for leader again,
    /// and a quiesce notice stopped its timer), and so did an append beside it.
    Earlier,
}

/// The peers of one node, in id order (the order reaches outputs: liveness beats).
#[derive(Debug, Default)]
pub(super) struct Peers {
    peers: BTreeMap<NodeId, Peer>,
    /// Ticks served ([`Peers::expire`] calls): the clock silence is counted in.
    served: u64,
    /// The longest this node's own loop stalled lately, in ticks of its clock (a tick
    /// served late after `missed` others counts `1 + missed`); halved with the peers'
    /// stretch. Peers get twice it before they are declared down ([`Peer::timeout`]).
    /// Without it, three nodes on two cores flooded by 131,072 client tasks declared each
    /// other down in the flood's first second: a peer's first 100 ms stall had no silence
    /// of its own to stretch by, and cost its groups their leaders.
    own_stall: u64,
    /// Changes whenever a peer is added or forgotten
    /// ([`Node::peers_version`](super::Node::peers_version)).
    version: u64,
}

impl Peers {
    /// Counts a hosted group with `membership`: its other replicas' nodes become (or stay)
    /// peers. A new peer starts live, heard from now.
    pub(super) fn add(&mut self, me: NodeId, membership: &Membership) {
        let now = self.served;
        for n in membership.replicas() {
            if n != me {
                if !self.peers.contains_key(&n) {
                    self.version += 1;
                }
                let p = self.peers.entry(n).or_insert(Peer {
                    last_heard: now,
                    longest_silence: 0,
                    live: true,
                    unreadable: false,
                    groups: 0,
                    incarnation: None,
                    earlier_incarnation: None,
                    lower: (0, 0, 0),
                    last_round: 0,
                    lease_until: 0,
                    leased_since: 0,
                });
                p.groups += 1;
            }
        }
    }

    /// Forgets one hosted group with `membership`.
    pub(super) fn remove(&mut self, membership: &Membership) {
        for n in membership.replicas() {
            if let Some(p) = self.peers.get_mut(&n) {
                p.groups -= 1;
                if p.groups == 0 {
                    self.peers.remove(&n);
                    self.version += 1;
                }
            }
        }
    }

    /// Changes whenever a peer is added or forgotten.
    pub(super) fn version(&self) -> u64 {
        self.version
    }

    /// A batch from `from` arrived.
    /// Returns whether `from` was declared down until now: it is back.
    pub(super) fn heard(&mut self, from: NodeId) -> bool {
        let now = self.served;
        let Some(p) = self.peers.get_mut(&from) else {
            return false;
        };
        p.longest_silence = p.longest_silence.max(now - p.last_heard);
        p.last_heard = now;
        p.unreadable = false;
        !std::mem::replace(&mut p.live, true)
    }

    /// A batch from `from` was refused unread: its arrivals stop counting until a batch of
    /// it is stepped.
    pub(super) fn refused(&mut self, from: NodeId) {
        if let Some(p) = self.peers.get_mut(&from) {
            p.unreadable = true;
        }
    }

    /// A batch from `from` came and waits unstepped (or was dropped by a full inbox): a
    /// live peer is heard from now ([`Node::batch_arrived`](super::Node::batch_arrived)),
    /// unless its last batch stepped was refused unread. A peer declared down is not
    /// brought back: that waits for a batch stepped.
    pub(super) fn arrived(&mut self, from: NodeId) {
        let now = self.served;
        if let Some(p) = (self.peers.get_mut(&from)).filter(|p| p.live && !p.unreadable) {
            p.longest_silence = p.longest_silence.max(now - p.last_heard);
            p.last_heard = now;
        }
    }

    /// The liveness part of a heartbeat message from `from` arrived at tick `now`. `mine`
    /// is this node's (incarnation, last round issued). Returns which life of the peer sent
    /// it: on [`Life::New`] its groups' earlier promises and leadership are gone.
    pub(super) fn beat(
        &mut self,
        from: NodeId,
        liveness: &Liveness,
        mine: (u64, u64),
        now: u64,
        lease_ticks: u64,
    ) -> Life {
        let served = self.served;
        let Some(p) = self.peers.get_mut(&from) else {
            return Life::Current;
        };
        let current = p.incarnation;
        let delayed = current.is_some_and(|c| liveness.incarnation < c)
            || p.earlier_incarnation == Some(liveness.incarnation);
        if current != Some(liveness.incarnation) && delayed {
            // The life before the current one, or a lower one (lives are numbered upward,
            // so a life before the last, or one this node never heard because it restarted
            // itself since): a delayed message, it says nothing of the node now. A beat of
            // a life before the last was taken for a restart, and its peers' groups forgot
            // their leader and elected again (simulator, stragglers, seed 12012706). Taken
            // for the live one only when it beats in a row with nothing of the current one
            // between: lives numbered out of order (a clock set back, or a first life the
            // seed named) then cost a few ticks, not every later beat of that life dropped
            // (seed 13002983).
            // Counted once a tick (review: counted per message, one delayed batch of
            // three heartbeat messages was taken for a restart).
            let streak = match p.lower {
                (life, streak, at) if life == liveness.incarnation && at == now => streak,
                (life, streak, _) if life == liveness.incarnation => streak + 1,
                _ => 1,
            };
            p.lower = (liveness.incarnation, streak, now);
            if streak < LOWER_LIFE_BEATS {
                return Life::Earlier;
            }
        }
        p.lower = (0, 0, 0);
        let mut life = Life::Current;
        if p.incarnation != Some(liveness.incarnation) {
            // A new life: whatever its groups promised before is gone.
            if p.incarnation.is_some() {
                life = Life::New;
            }
            p.earlier_incarnation = p.incarnation;
            p.incarnation = Some(liveness.incarnation);
            // Its silence was a restart, not a stall: a new life is timed afresh (from
            // now: `heard` comes after this, and must not count the silence).
            p.longest_silence = 0;
            p.last_heard = served;
            p.last_round = 0;
            p.lease_until = 0;
        }
        p.last_round = p.last_round.max(liveness.round);
        let (incarnation, round) = mine;
        if liveness.echo_incarnation == incarnation && liveness.echo != 0 && liveness.echo <= round
        {
            let until = (liveness.echo >> ROUND_SEQ_BITS) + lease_ticks;
            if until > now {
                if p.lease_until <= now {
                    // The lease lapsed (or never held): it starts again now.
                    p.leased_since = now;
                }
                p.lease_until = p.lease_until.max(until);
            }
        }
        life
    }

    /// The liveness part of the next heartbeat message to `to`.
    pub(super) fn liveness_to(&self, to: NodeId, incarnation: u64, round: u64) -> Liveness {
        let p = self.peers.get(&to);
        Liveness {
            incarnation,
            round,
            echo: p.map_or(0, |p| p.last_round),
            echo_incarnation: p.and_then(|p| p.incarnation).unwrap_or(0),
        }
    }

    /// If `peer`'s lease holds at tick `now`, the tick since which it has held without a
    /// break.
    pub(super) fn leased_since(&self, peer: NodeId, now: u64) -> Option<u64> {
        self.peers
            .get(&peer)
            .filter(|p| p.lease_until > now)
            .map(|p| p.leased_since)
    }

    /// Serves one tick, which comes `missed` ticks late: declares down every live peer
    /// silent for more than its timeout (`timeout` served ticks, stretched by its recent
    /// silences and by this node's own stalls). Returns them, and how many peers are down
    /// now (these and the ones declared before), counted in the same walk.
    pub(super) fn expire(&mut self, timeout: u64, missed: u64) -> (Vec<NodeId>, usize) {
        self.served += 1;
        let now = self.served;
        let decay = now.is_multiple_of(timeout.max(1).saturating_mul(STRETCH_DECAY_TIMEOUTS));
        // A silence or stall counts up to what stretches the timeout to its cap: kept whole,
        // an hour's partition took eleven decay periods (minutes) to give the plain timeout
        // back, where "a few" are meant (review).
        let most = timeout.saturating_mul(MAX_TIMEOUT_STRETCH) / 2;
        if decay {
            self.own_stall /= 2;
        }
        self.own_stall = self.own_stall.max(missed.saturating_add(1)).min(most);
        let own_stall = self.own_stall;
        let mut down = Vec::new();
        let mut down_now = 0;
        for (id, p) in self.peers.iter_mut() {
            p.longest_silence = p.longest_silence.min(most);
            if decay {
                p.longest_silence /= 2;
            }
            if p.live && now - p.last_heard > p.timeout(timeout, own_stall) {
                p.live = false;
                down.push(*id);
            }
            down_now += usize::from(!p.live);
        }
        (down, down_now)
    }

    /// Whether `peer` is live; `None` for a node that is not a peer.
    pub(super) fn live(&self, peer: NodeId) -> Option<bool> {
        self.peers.get(&peer).map(|p| p.live)
    }

    /// Whether `peer` is known and live: a node never heard of counts as neither live nor
    /// down, and the rules that lean on liveness (quorums, transfers, snapshot slots) count
    /// only what is known.
    pub(super) fn is_live(&self, peer: NodeId) -> bool {
        self.live(peer) == Some(true)
    }

    /// Whether `peer` is known and declared down.
    pub(super) fn is_down(&self, peer: NodeId) -> bool {
        self.live(peer) == Some(false)
    }

    /// How many peers are declared down (not heard from within their timeout).
    pub(super) fn down_count(&self) -> usize {
        self.peers.values().filter(|p| !p.live).count()
    }

    /// Every peer, in id order.
    pub(super) fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.peers.keys().copied()
    }

    /// Whether there are no peers.
    pub(super) fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: u64 = 10;

    fn one_peer() -> Peers {
        let mut peers = Peers::default();
        peers.add(NodeId(1), &Membership::voters([1, 2]));
        peers
    }

    /// Serves `ticks` ticks in which the peer says nothing.
    fn silent_for(peers: &mut Peers, ticks: u64) {
        for _ in 0..ticks {
            peers.expire(TIMEOUT, 0);
        }
    }

    /// Serves `ticks` ticks, the peer heard at each.
    fn heard_every_tick(peers: &mut Peers, ticks: u64) {
        for _ in 0..ticks {
            peers.expire(TIMEOUT, 0);
            peers.heard(NodeId(2));
        }
    }

    /// Serves ticks until the peer is declared down; returns how many it took.
    fn silence_until_down(peers: &mut Peers, limit: u64) -> Option<u64> {
        (1..=limit).find(|_| !peers.expire(TIMEOUT, 0).0.is_empty())
    }

    #[test]
    fn a_silent_peer_is_down_after_the_timeout() {
        let mut peers = one_peer();
        assert_eq!(silence_until_down(&mut peers, 1000), Some(TIMEOUT + 1));
        assert_eq!(peers.live(NodeId(2)), Some(false));
        // Declared once, and counted down on every tick until heard again.
        assert_eq!(peers.expire(TIMEOUT, 0), (vec![], 1));
        assert_eq!(peers.down_count(), 1);
        peers.heard(NodeId(2));
        assert_eq!(peers.live(NodeId(2)), Some(true));
        assert_eq!(peers.expire(TIMEOUT, 0), (vec![], 0));
    }

    /// A peer whose batches come but wait unstepped in this node's backlog (or are dropped
    /// by its full inbox) is not silent: it stays live however long they wait. Once declared
    /// down, a batch that only came does not bring it back; one stepped does.
    #[test]
    fn a_peer_whose_batches_wait_is_not_silent() {
        let mut peers = Peers::default();
        peers.add(NodeId(1), &Membership::voters([1, 2, 3]));
        for tick in 1..=10 * TIMEOUT {
            peers.arrived(NodeId(2));
            let expected = if tick == TIMEOUT + 1 {
                vec![NodeId(3)]
            } else {
                vec![]
            };
            assert_eq!(
                peers.expire(TIMEOUT, 0).0,
                expected,
                "only node 3 is silent"
            );
        }
        assert_eq!(peers.live(NodeId(2)), Some(true));
        // Heard before the last tick served, as a batch stepped then would be.
        assert_eq!(silence_until_down(&mut peers, 1000), Some(TIMEOUT));
        peers.arrived(NodeId(2));
        assert_eq!(peers.live(NodeId(2)), Some(false));
        assert_eq!(peers.expire(TIMEOUT, 0), (vec![], 2));
        assert!(peers.heard(NodeId(2)), "a batch stepped: back");
        // Once a batch of it is refused unread, its arrivals stop counting until one of its
        // batches is stepped.
        peers.refused(NodeId(2));
        let declared = (1..=1000).find(|_| {
            peers.arrived(NodeId(2));
            peers.expire(TIMEOUT, 0).0 == vec![NodeId(2)]
        });
        assert!(declared.is_some(), "its arrivals keep it live no longer");
        peers.heard(NodeId(2));
        for _ in 0..1000 {
            peers.arrived(NodeId(2));
            assert_eq!(peers.expire(TIMEOUT, 0), (vec![], 1));
        }
        // A node that is not a peer is ignored.
        peers.arrived(NodeId(9));
        assert_eq!(peers.live(NodeId(9)), None);
    }

    /// A peer heard again after a silence of 25 ticks (a stall) is given twice that before
    /// it is declared down next time; a dead one is still declared down, within
    /// `MAX_TIMEOUT_STRETCH` timeouts however long it stalled before.
    #[test]
    fn a_peer_that_stalled_gets_twice_that_silence_at_most_the_stretch() {
        let mut peers = one_peer();
        silent_for(&mut peers, 25);
        peers.heard(NodeId(2));
        assert_eq!(silence_until_down(&mut peers, 1000), Some(51));
        peers.heard(NodeId(2)); // after 51 ticks down: the stretch is now the cap
        assert_eq!(
            silence_until_down(&mut peers, 1000),
            Some(MAX_TIMEOUT_STRETCH * TIMEOUT + 1)
        );
    }

    /// A node whose own loop served a tick 24 ticks late (a stall of 25 ticks of its
    /// clock) gives a silent peer twice that before declaring it down, though the peer
    /// never stalled before: the load that stalled this node likely stalls its peers too.
    /// The allowance is capped like a peer's own stretch, and halves with it.
    #[test]
    fn an_own_stall_stretches_every_peers_timeout() {
        let mut peers = one_peer();
        peers.expire(TIMEOUT, 24);
        // Silent since served tick 0, the late tick served: down at served tick 51.
        assert_eq!(silence_until_down(&mut peers, 1000), Some(50));

        peers.heard(NodeId(2));
        peers.expire(TIMEOUT, 1_000); // a long pause: the cap holds
        assert_eq!(
            silence_until_down(&mut peers, 1000),
            Some(MAX_TIMEOUT_STRETCH * TIMEOUT)
        );

        peers.heard(NodeId(2));
        heard_every_tick(&mut peers, 12 * STRETCH_DECAY_TIMEOUTS * TIMEOUT);
        assert_eq!(silence_until_down(&mut peers, 1000), Some(TIMEOUT + 1));
    }

    /// However long a silence (an hour's partition) or this node's own stall (a process
    /// stopped and resumed), the stretch it leaves is the cap's, and a few decay periods
    /// give the plain timeout back. Regression (review): the silence was kept whole, only
    /// the timeout computed from it capped, and ten thousand ticks of it took eleven decay
    /// periods to wear off.
    #[test]
    fn a_long_silence_stretches_no_longer_than_the_cap() {
        let mut peers = one_peer();
        silent_for(&mut peers, 10_000);
        peers.heard(NodeId(2));
        peers.expire(TIMEOUT, 10_000);
        peers.heard(NodeId(2));
        heard_every_tick(&mut peers, 4 * STRETCH_DECAY_TIMEOUTS * TIMEOUT);
        assert_eq!(silence_until_down(&mut peers, 1000), Some(TIMEOUT + 1));
    }

    /// The stretch halves every `STRETCH_DECAY_TIMEOUTS` timeouts, so a peer that stopped
    /// stalling gets the plain timeout back; a restart (a new incarnation) is not a stall.
    #[test]
    fn the_stretch_decays_and_a_restart_resets_it() {
        let mut peers = one_peer();
        silent_for(&mut peers, 40);
        peers.heard(NodeId(2));
        heard_every_tick(&mut peers, 4 * STRETCH_DECAY_TIMEOUTS * TIMEOUT);
        assert_eq!(silence_until_down(&mut peers, 1000), Some(TIMEOUT + 1));

        peers.heard(NodeId(2)); // after 11 ticks: stretched to 22
        peers.beat(NodeId(2), &beat_of(1), (1, 0), 0, 0);
        peers.beat(NodeId(2), &beat_of(2), (1, 0), 0, 0); // it restarted
        assert_eq!(silence_until_down(&mut peers, 1000), Some(TIMEOUT + 1));
    }

    /// A liveness beat of the peer's life `incarnation`, echoing nothing.
    fn beat_of(incarnation: u64) -> Liveness {
        Liveness {
            incarnation,
            round: 1,
            echo: 0,
            echo_incarnation: 0,
        }
    }

    /// A beat of a peer's earlier life that arrives after its new life's (a reordering the
    /// transport may do) is not taken for another restart; a new life, numbered above, is.
    /// (The simulator's pauses, seed 145: the stale beat made a follower forget its
    /// leader after the heal, and elect again.)
    #[test]
    fn a_delayed_beat_of_an_earlier_life_is_not_a_restart() {
        let mut peers = one_peer();
        let mut life = |incarnation| peers.beat(NodeId(2), &beat_of(incarnation), (1, 0), 0, 0);
        assert_eq!(life(5), Life::Current, "first heard");
        assert_eq!(life(9), Life::New, "restarted");
        assert_eq!(life(5), Life::Earlier, "a stale beat");
        assert_eq!(life(9), Life::Current, "the same life");
        assert_eq!(life(12), Life::New, "restarted again");
        assert_eq!(life(9), Life::Earlier, "a stale beat");
        assert_eq!(
            life(5),
            Life::Earlier,
            "a stale beat of a life before the last"
        );
        assert_eq!(life(12), Life::Current, "the same life");
    }

    /// Beats of a lower life that arrive at one tick count once towards taking it for the
    /// live one: a delayed batch of the peer's earlier life holding several heartbeat
    /// messages (one per 65,536 groups), or several delayed batches arriving together, are
    /// no life beating in a row. Regression (review): counted per message, one such batch
    /// was taken for a restart, and the peer's groups forgot their leader, and with it the
    /// lease they had promised it.
    #[test]
    fn delayed_beats_of_a_lower_life_at_one_tick_count_once() {
        let mut peers = one_peer();
        let mut life =
            |incarnation, now| peers.beat(NodeId(2), &beat_of(incarnation), (1, 0), now, 0);
        assert_eq!(life(5, 1), Life::Current, "first heard");
        assert_eq!(life(9, 2), Life::New, "restarted");
        for _ in 0..LOWER_LIFE_BEATS + 2 {
            assert_eq!(life(5, 3), Life::Earlier, "one delayed batch");
        }
        assert_eq!(life(5, 4), Life::Earlier);
        assert_eq!(life(5, 5), Life::New, "a third tick in a row: the live one");
    }

    /// A beat of a life lower than the current one is delayed, whichever life it is; a
    /// lower life that beats in a row with the current one silent is a restart whose
    /// clock went back. Regression: a beat of a life before the last (or one this node,
    /// restarted itself, never heard) was taken for a restart, and the peer's groups
    /// elected again (simulator, stragglers, seed 12012706).
    #[test]
    fn a_lower_life_is_a_restart_only_when_it_beats_in_a_row() {
        let mut peers = one_peer();
        let mut now = 0;
        let mut life = |incarnation| {
            now += 1; // one beat a tick
            peers.beat(NodeId(2), &beat_of(incarnation), (1, 0), now, 0)
        };
        assert_eq!(
            life(23),
            Life::Current,
            "first heard, after this node's restart"
        );
        assert_eq!(life(22), Life::Earlier, "delayed");
        assert_eq!(life(22), Life::Earlier, "delayed");
        assert_eq!(life(23), Life::Current, "the current life between");
        assert_eq!(life(22), Life::Earlier, "delayed again");
        assert_eq!(life(22), Life::Earlier);
        assert_eq!(
            life(22),
            Life::New,
            "three in a row: a restart with its clock set back"
        );
        assert_eq!(life(22), Life::Current);
        assert_eq!(life(23), Life::Earlier, "now the earlier life");
        assert_eq!(life(23), Life::Earlier);
        assert_eq!(life(23), Life::New, "it beats in a row: the live one");
        assert_eq!(life(23), Life::Current);
    }
}
