//! Adding and removing nodes: the membership endpoints of a kv node.
//!
//! - `GET /admin/groups/{group}/membership`: the group's membership on this node (what a
//!   joining node starts its replica with).
//! - `POST` / `DELETE /admin/groups/{group}/members/{node}`: adds `node` as a voter to, or
//!   removes it from, one group this node leads (421 with the leader's URL otherwise).
//! - `PUT /admin/peers/{node}` (JSON `{"raft": …, "http": …}`): where `node` listens, on
//!   this node only.
//! - `PUT /admin/nodes/{node}` (same body) and `DELETE /admin/nodes/{node}`: the whole
//!   operation, asked of any node: tells every node where the new one listens, then changes
//!   every group's membership through its leader, one group at a time.
//!
//! These endpoints share the client port and ask for no credentials: whoever reaches the
//! port can remove a node from every group. An example's choice, not a production one:
//! serve them on a trusted network only, or behind authentication.
//!
//! Adding a node: start it with `kv node --join` (its replicas of every group start
//! empty, joining with the membership a peer reports), then `PUT /admin/nodes/{id}` on any
//! node. Removing: `DELETE /admin/nodes/{id}`, asked of a node that stays; each replica told
//! it was removed is deleted by its node (`Event::ReplicaRemoved`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use multiraft_core::{GroupId, Membership, MembershipChange, MembershipChangeError, NodeId};
use serde::{Deserialize, Serialize};

use super::http::{ApiError, AppState};

/// Attempts per group of a node-wide change before it is reported failed: a group may be
/// electing a leader or finishing another change. With [`RETRY_PAUSE`], about 10 s.
pub const CHANGE_ATTEMPTS: u32 = 50;
/// The pause between two attempts.
pub const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// How long one group's change may take on its leader: adding a voter waits for the new
/// replica to catch up (`Config::proposal_timeout_ticks` without progress fails it there).
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a node listens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddrs {
    /// Its QUIC endpoint.
    pub raft: SocketAddr,
    /// Its HTTP server.
    pub http: SocketAddr,
}

/// One group's result of a node-wide change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupResult {
    /// The group.
    pub group: u64,
    /// The error, if the change failed.
    pub error: Option<String>,
}

/// The answer of `PUT` / `DELETE /admin/nodes/{node}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeChangeBody {
    /// Whether every group changed.
    pub ok: bool,
    /// Each group's result.
    pub groups: Vec<GroupResult>,
    /// What went wrong without stopping the change (a node not told a new address).
    #[serde(default)]
    pub warnings: Vec<String>,
}

pub(crate) async fn membership(
    State(state): State<AppState>,
    Path(group): Path<u64>,
) -> Result<Json<Membership>, ApiError> {
    match state.raft.membership(GroupId(group)).await {
        Ok(Some(m)) => Ok(Json(m)),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "group_not_found",
            format!("group {group} not hosted here"),
            true,
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopped",
            e.to_string(),
            true,
        )),
    }
}

pub(crate) async fn add_member(
    State(state): State<AppState>,
    Path((group, node)): Path<(u64, u64)>,
) -> Result<Json<Membership>, ApiError> {
    change(&state, group, MembershipChange::AddVoter(NodeId(node))).await
}

pub(crate) async fn remove_member(
    State(state): State<AppState>,
    Path((group, node)): Path<(u64, u64)>,
) -> Result<Json<Membership>, ApiError> {
    change(&state, group, MembershipChange::Remove(NodeId(node))).await
}

async fn change(
    state: &AppState,
    group: u64,
    change: MembershipChange,
) -> Result<Json<Membership>, ApiError> {
    state
        .raft
        .change_membership(GroupId(group), change)
        .await
        .map(Json)
        .map_err(|e| ApiError::membership(state, e))
}

pub(crate) async fn set_peer(
    State(state): State<AppState>,
    Path(node): Path<u64>,
    Json(addrs): Json<NodeAddrs>,
) -> StatusCode {
    state.set_peer(NodeId(node), &addrs);
    StatusCode::NO_CONTENT
}

pub(crate) async fn add_node(
    State(state): State<AppState>,
    Path(node): Path<u64>,
    Json(addrs): Json<NodeAddrs>,
) -> Response {
    // Every node learns the address first: the ones with lower ids dial the new node. A
    // node that cannot be told (down: perhaps the one being replaced) is reported, not an
    // obstacle; it is given the address with `--peer` when it starts again.
    state.set_peer(NodeId(node), &addrs);
    let mut warnings = Vec::new();
    for (id, url) in state.urls() {
        if id != state.raft.id() && id != NodeId(node) {
            let sent = state
                .client
                .put(format!("{url}/admin/peers/{node}"))
                .json(&addrs)
                .send()
                .await;
            if let Err(e) = sent.and_then(|r| r.error_for_status()) {
                warnings.push(format!(
                    "node {} not told where node {node} listens: {e}",
                    id.0
                ));
            }
        }
    }
    every_group(&state, node, reqwest::Method::POST, warnings).await
}

pub(crate) async fn remove_node(State(state): State<AppState>, Path(node): Path<u64>) -> Response {
    if NodeId(node) == state.raft.id() {
        // This node's replicas go as the change commits: it could not follow the change to
        // its end. Another node can.
        let message = "a node cannot remove itself: ask another node".to_string();
        return ApiError::new(StatusCode::BAD_REQUEST, "invalid", message, true).into_response();
    }
    let response = every_group(&state, node, reqwest::Method::DELETE, Vec::new()).await;
    if response.status().is_success() {
        state.forget_peer(NodeId(node));
    }
    response
}

/// `group`'s membership in force on this node if it is committed there (membership and
/// status read together, from one report).
async fn committed_membership(state: &AppState, group: GroupId) -> Option<Membership> {
    let report = state.raft.report(group, 1).await.ok()?;
    let g = report.groups.into_iter().next()?;
    (g.status.group == group && g.status.membership_committed).then_some(g.membership)
}

/// Adds `node` to (POST) or removes it from (DELETE) every group, through each group's
/// leader, retrying while a group has no leader or another change runs.
async fn every_group(
    state: &AppState,
    node: u64,
    method: reqwest::Method,
    warnings: Vec<String>,
) -> Response {
    let mut groups = Vec::new();
    for g in 1..=state.groups {
        let mut error = None;
        for _ in 0..CHANGE_ATTEMPTS {
            // Done already (an earlier attempt whose answer was lost, or a repeated call)?
            // Only by a committed membership: an uncommitted one (a change that ended
            // indeterminate) may still be rolled back (review: read as done, a node still a
            // voter was reported removed and forgotten).
            if let Some(m) = committed_membership(state, GroupId(g)).await
                && !m.is_joint()
                && m.is_voter(NodeId(node)) == (method == reqwest::Method::POST)
                && (method == reqwest::Method::POST || !m.contains(NodeId(node)))
            {
                error = None;
                break;
            }
            let leader = state
                .raft
                .status(GroupId(g))
                .await
                .ok()
                .flatten()
                .and_then(|s| s.leader)
                .and_then(|l| state.urls().get(&l).cloned());
            let Some(url) = leader else {
                error = Some("no leader known".to_string());
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            };
            let sent = state
                .client
                .request(
                    method.clone(),
                    format!("{url}/admin/groups/{g}/members/{node}"),
                )
                .timeout(CHANGE_TIMEOUT)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    error = None;
                    break;
                }
                // Invalid (no such node, a node that is no voter): no attempt will do.
                Ok(r) if matches!(r.status().as_u16(), 400 | 404) => {
                    error = Some(r.text().await.unwrap_or_default());
                    break;
                }
                // Refused (no leader, another change running) or indeterminate (leadership
                // changed midway): the next attempt first checks whether it took effect.
                Ok(r) => error = Some(r.text().await.unwrap_or_default()),
                Err(e) => error = Some(e.to_string()),
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        groups.push(GroupResult { group: g, error });
    }
    let ok = groups.iter().all(|g| g.error.is_none());
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    let body = NodeChangeBody {
        ok,
        groups,
        warnings,
    };
    (status, Json(body)).into_response()
}

impl ApiError {
    fn membership(state: &AppState, e: MembershipChangeError) -> ApiError {
        let message = e.to_string();
        let (status, code, definite) = match e {
            MembershipChangeError::NotLeader { leader_hint } => {
                return ApiError::not_leader(state, leader_hint, message);
            }
            MembershipChangeError::ChangeInProgress => {
                (StatusCode::CONFLICT, "change_in_progress", true)
            }
            MembershipChangeError::TransferInProgress => {
                (StatusCode::CONFLICT, "transfer_in_progress", true)
            }
            MembershipChangeError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid", true),
            MembershipChangeError::CatchUpTimeout { .. } => {
                (StatusCode::GATEWAY_TIMEOUT, "catch_up_timeout", true)
            }
            MembershipChangeError::GroupNotFound(_) => {
                (StatusCode::NOT_FOUND, "group_not_found", true)
            }
            MembershipChangeError::Indeterminate(_) => {
                (StatusCode::GATEWAY_TIMEOUT, "indeterminate", false)
            }
            _ => (StatusCode::SERVICE_UNAVAILABLE, "stopped", true),
        };
        ApiError::new(status, code, message, definite)
    }
}
