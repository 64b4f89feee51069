//! The HTTP API of one kv node: `/kv/{key}` (GET, PUT, DELETE), `/kv/{key}/cas` (POST),
//! the status page (`/`, `/status.json`) and `/metrics`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes as Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use multiraft_core::{Bytes, GroupId, MultiRaft, NodeId, ProposeError, ReadError, ReadPolicy};
use serde::Deserialize;

use multiraft_transport_quic::QuicTransport;

use super::admin;
use super::client::{CasBody, ErrorBody, WriteBody};
use super::machine::{KvAnswer, KvCommand, decode_value, group_of};
use super::status;

/// The largest request body taken, in bytes: a value (or a compare-and-set) larger than
/// this is refused with 413 before it reaches the node, whose own limit
/// (`Config::max_proposal_bytes`) it stays under.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The node.
    pub raft: MultiRaft,
    /// The node's transport, told where nodes added later listen.
    pub transport: QuicTransport,
    /// How many groups the keys are spread over.
    pub groups: u64,
    /// Every node's HTTP base URL (`http://host:port`), this one's too: where to send a
    /// client the node cannot serve. Grows as nodes are added.
    pub http_urls: Arc<RwLock<BTreeMap<NodeId, String>>>,
    /// The Prometheus recorder, rendered at `/metrics`.
    pub metrics: PrometheusHandle,
    /// For the admin endpoints' calls to other nodes.
    pub client: reqwest::Client,
}

impl AppState {
    /// Every known node's HTTP base URL.
    pub fn urls(&self) -> BTreeMap<NodeId, String> {
        self.http_urls.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// `node` listens at `addrs`: the transport dials it there (if its id is higher) and
    /// clients are sent to its HTTP address.
    pub fn set_peer(&self, node: NodeId, addrs: &super::admin::NodeAddrs) {
        if node != self.raft.id() {
            self.transport.set_peer_addr(node, addrs.raft);
        }
        if let Ok(mut urls) = self.http_urls.write() {
            urls.insert(node, format!("http://{}", addrs.http));
        }
    }

    /// `node` left the cluster: no longer dialed, no longer a URL to send clients to.
    pub fn forget_peer(&self, node: NodeId) {
        self.transport.remove_peer_addr(node);
        if let Ok(mut urls) = self.http_urls.write() {
            urls.remove(&node);
        }
    }
}

/// The router of one node.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(status::page))
        .route("/status", get(status::page))
        .route("/status.json", get(status::json))
        .route("/metrics", get(render_metrics))
        .route("/kv/{key}", get(read).put(put).delete(delete))
        .route("/kv/{key}/cas", post(cas))
        .route("/admin/groups/{group}/membership", get(admin::membership))
        .route(
            "/admin/groups/{group}/members/{node}",
            post(admin::add_member).delete(admin::remove_member),
        )
        .route("/admin/peers/{node}", axum::routing::put(admin::set_peer))
        .route(
            "/admin/nodes/{node}",
            axum::routing::put(admin::add_node).delete(admin::remove_node),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// A failed request: its status and JSON body.
pub(crate) struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: String, definite: bool) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: code.to_string(),
                message,
                definite,
                leader: None,
                leader_url: None,
            },
        }
    }

    /// A request this node cannot serve: 421, with the leader and its URL when known.
    pub(crate) fn not_leader(state: &AppState, hint: Option<NodeId>, message: String) -> ApiError {
        let mut e = ApiError::new(StatusCode::MISDIRECTED_REQUEST, "not_leader", message, true);
        e.body.leader = hint.map(|n| n.0);
        e.body.leader_url = hint.and_then(|n| state.urls().get(&n).cloned());
        e
    }

    fn propose(state: &AppState, e: ProposeError) -> ApiError {
        let message = e.to_string();
        let (status, code, definite) = match e {
            ProposeError::NotLeader { leader_hint } => {
                return ApiError::not_leader(state, leader_hint, message);
            }
            ProposeError::NoLeader => (StatusCode::SERVICE_UNAVAILABLE, "no_leader", true),
            ProposeError::TransferInProgress => (
                StatusCode::SERVICE_UNAVAILABLE,
                "transfer_in_progress",
                true,
            ),
            ProposeError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy", true),
            ProposeError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", true),
            ProposeError::GroupNotFound(_) => {
                (StatusCode::MISDIRECTED_REQUEST, "group_not_found", true)
            }
            ProposeError::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "stopped", true),
            ProposeError::Indeterminate(_) => (StatusCode::GATEWAY_TIMEOUT, "indeterminate", false),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "unknown", false),
        };
        ApiError::new(status, code, message, definite)
    }

    fn read(state: &AppState, e: ReadError) -> ApiError {
        let message = e.to_string();
        let (status, code) = match e {
            ReadError::NotLeader { leader_hint } => {
                return ApiError::not_leader(state, leader_hint, message);
            }
            ReadError::NoLeader => (StatusCode::SERVICE_UNAVAILABLE, "no_leader"),
            ReadError::LeadershipChanged => (StatusCode::SERVICE_UNAVAILABLE, "leadership_changed"),
            ReadError::GroupNotFound(_) => (StatusCode::MISDIRECTED_REQUEST, "group_not_found"),
            ReadError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            ReadError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "stopped"),
        };
        // A read changes nothing: its failure is always definite.
        ApiError::new(status, code, message, true)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(url) = &self.body.leader_url
            && let Ok(v) = HeaderValue::from_str(url)
        {
            headers.insert(header::LOCATION, v);
        }
        (self.status, headers, Json(self.body)).into_response()
    }
}

/// How a GET reads (`?read=`): `follower` (the default: linearizable on any node, the
/// leader confirms the read point), `index` (ReadIndex on the leader) or `lease` (the
/// leader's lease, no round while it holds).
#[derive(Deserialize)]
struct ReadParams {
    read: Option<String>,
}

async fn read(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(params): Query<ReadParams>,
) -> Result<Response, ApiError> {
    let policy = match params.read.as_deref() {
        None | Some("follower") => ReadPolicy::Follower,
        Some("index") => ReadPolicy::ReadIndex,
        Some("lease") => ReadPolicy::Lease,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("read={other}: expected follower, index or lease"),
                true,
            ));
        }
    };
    let started = Instant::now();
    let group = group_of(&key, state.groups);
    let answer = state
        .raft
        .read(group, policy, Bytes::from(key))
        .await
        .map_err(|e| ApiError::read(&state, e));
    record("get", started, answer.is_ok());
    let value = decode_value(&answer?).ok_or_else(|| unreadable("read"))?;
    Ok(match value {
        Some(v) => (StatusCode::OK, v).into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such key".into(),
            true,
        )
        .into_response(),
    })
}

async fn put(
    State(state): State<AppState>,
    Path(key): Path<String>,
    value: Body,
) -> Result<Json<WriteBody>, ApiError> {
    let command = KvCommand::Put { key, value };
    write(&state, "put", command).await
}

async fn delete(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<WriteBody>, ApiError> {
    write(&state, "delete", KvCommand::Delete { key }).await
}

async fn cas(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Json(body): Json<CasBody>,
) -> Result<Response, ApiError> {
    let command = KvCommand::Cas {
        key,
        expected: body.expected.map(Bytes::from),
        new: body.new.map(Bytes::from),
    };
    let answer = write(&state, "cas", command).await?;
    let status = if answer.ok {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    Ok((status, answer).into_response())
}

/// Proposes `command` to its key's group (a follower forwards it to the leader) and
/// answers with what applying it returned.
async fn write(
    state: &AppState,
    op: &'static str,
    command: KvCommand,
) -> Result<Json<WriteBody>, ApiError> {
    let key = match &command {
        KvCommand::Put { key, .. } | KvCommand::Delete { key } | KvCommand::Cas { key, .. } => key,
    };
    let group: GroupId = group_of(key, state.groups);
    let started = Instant::now();
    let result = state.raft.propose(group, command.encode()).await;
    record(op, started, result.is_ok());
    let bytes = result.map_err(|e| ApiError::propose(state, e))?;
    let text = |b: Option<Bytes>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
    match KvAnswer::decode(&bytes) {
        Some(KvAnswer::Done { previous }) => Ok(Json(WriteBody {
            ok: true,
            previous: text(previous),
            current: None,
        })),
        Some(KvAnswer::Mismatch { current }) => Ok(Json(WriteBody {
            ok: false,
            previous: None,
            current: text(current),
        })),
        // Applied, but as nothing: a definite no-op.
        Some(KvAnswer::Invalid) => Err(unreadable(op)),
        // Applied, with an answer this build cannot read: whatever it did stands.
        None => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unreadable_answer",
            format!("the {op} was applied but its answer is unreadable"),
            false,
        )),
    }
}

fn unreadable(op: &str) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "invalid",
        format!("the state machine could not take this {op}"),
        true,
    )
}

/// Counts a request and its latency in the service's own metrics.
fn record(op: &'static str, started: Instant, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    metrics::counter!("kv_requests_total", "op" => op, "outcome" => outcome).increment(1);
    metrics::histogram!("kv_request_seconds", "op" => op).record(started.elapsed().as_secs_f64());
}
