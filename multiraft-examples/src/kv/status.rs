//! The status page: every group the node hosts (role, leader, term, commit and applied
//! index, each follower's lag, quiesced or active), its peers' liveness and its counts, as
//! JSON (`/status.json`) and as a page that refreshes itself from it (`/`).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use multiraft_core::{GroupId, MAX_REPORT_GROUPS, Role};
use serde::{Deserialize, Serialize};

use super::http::AppState;

/// `/status.json`'s answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusBody {
    /// This node.
    pub node: u64,
    /// Groups hosted.
    pub groups_hosted: usize,
    /// Groups not quiesced.
    pub groups_active: usize,
    /// Proposals in progress.
    pub pending_proposals: usize,
    /// Reads in progress.
    pub pending_reads: usize,
    /// Peer nodes and whether each is heard from.
    pub peers: Vec<PeerBody>,
    /// Hosted groups, from `?from=` on, at most `?limit=`.
    pub groups: Vec<GroupBody>,
    /// More groups follow.
    pub more: bool,
}

/// One peer node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerBody {
    /// Its id.
    pub node: u64,
    /// Heard from within the liveness timeout.
    pub live: bool,
    /// Its HTTP address, when configured.
    pub url: Option<String>,
}

/// One hosted group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupBody {
    /// Its id.
    pub group: u64,
    /// This replica's role: leader, follower, candidate, pre-candidate, learner.
    pub role: String,
    /// The leader known (node id).
    pub leader: Option<u64>,
    /// Current term.
    pub term: u64,
    /// Last log index.
    pub last_index: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Idle (quiesced) rather than active.
    pub quiesced: bool,
    /// Voters of the membership in force.
    pub voters: Vec<u64>,
    /// On the leader: each follower's lag (entries behind the leader's last index).
    pub followers: Vec<FollowerBody>,
}

/// One follower, as its leader sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FollowerBody {
    /// Its node.
    pub node: u64,
    /// Highest index known to match.
    pub matched: u64,
    /// Entries it lacks.
    pub lag: u64,
    /// Heard from recently.
    pub active: bool,
    /// Being sent a snapshot.
    pub snapshot: bool,
}

/// `?from=` (first group id) and `?limit=` (at most `MAX_REPORT_GROUPS`).
#[derive(Deserialize)]
pub(crate) struct Page {
    from: Option<u64>,
    limit: Option<usize>,
}

pub(crate) async fn json(
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<StatusBody>, StatusCode> {
    let report = state
        .raft
        .report(
            GroupId(page.from.unwrap_or(0)),
            page.limit.unwrap_or(MAX_REPORT_GROUPS),
        )
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    let groups = report
        .groups
        .iter()
        .map(|g| GroupBody {
            group: g.status.group.0,
            role: role(g.status.role).to_string(),
            leader: g.status.leader.map(|n| n.0),
            term: g.status.term,
            last_index: g.status.last_index,
            commit: g.status.commit,
            applied: g.status.applied,
            quiesced: g.quiesced,
            voters: g
                .membership
                .replicas()
                .into_iter()
                .filter(|n| g.membership.is_voter(*n))
                .map(|n| n.0)
                .collect(),
            followers: g
                .followers
                .iter()
                .map(|f| FollowerBody {
                    node: f.node.0,
                    matched: f.matched,
                    lag: f.lag(g.status.last_index),
                    active: f.active,
                    snapshot: f.snapshot,
                })
                .collect(),
        })
        .collect();
    let urls = state.urls();
    Ok(Json(StatusBody {
        node: report.node.0,
        groups_hosted: report.status.groups,
        groups_active: report.status.active_groups,
        pending_proposals: report.status.pending_proposals,
        pending_reads: report.status.pending_reads,
        peers: report
            .peers
            .iter()
            .map(|p| PeerBody {
                node: p.node.0,
                live: p.live,
                url: urls.get(&p.node).cloned(),
            })
            .collect(),
        groups,
        more: report.more,
    }))
}

fn role(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre-candidate",
        Role::Learner => "learner",
    }
}

pub(crate) async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// The page: static HTML whose script fetches `/status.json` every second and redraws.
const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>multiraft kv node</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; }
td.text { text-align: left; }
.leader { font-weight: bold; color: #0a5; }
.dead { color: #c22; font-weight: bold; }
#error { color: #c22; }
</style>
</head>
<body>
<h1>multiraft kv — node <span id="node">?</span></h1>
<p id="summary">loading…</p>
<p id="error"></p>
<h2>Peers</h2>
<table id="peers"><thead><tr><th>node</th><th>live</th><th>status page</th></tr></thead><tbody></tbody></table>
<h2>Groups</h2>
<table id="groups"><thead><tr>
<th>group</th><th>role</th><th>leader</th><th>term</th><th>commit</th><th>applied</th>
<th>state</th><th>voters</th><th>follower lag</th>
</tr></thead><tbody></tbody></table>
<script>
function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}
async function refresh() {
  try {
    const r = await fetch("/status.json");
    const s = await r.json();
    document.getElementById("node").textContent = s.node;
    document.getElementById("summary").textContent =
      `${s.groups_hosted} groups hosted, ${s.groups_active} active, ` +
      `${s.pending_proposals} proposals and ${s.pending_reads} reads pending` +
      (s.more ? " (first page of groups shown)" : "");
    const peers = document.querySelector("#peers tbody");
    peers.replaceChildren();
    for (const p of s.peers) {
      const row = document.createElement("tr");
      cell(row, p.node);
      cell(row, p.live ? "live" : "down", p.live ? "" : "dead");
      const td = cell(row, "", "text");
      if (p.url) { const a = document.createElement("a"); a.href = p.url; a.textContent = p.url; td.appendChild(a); }
      peers.appendChild(row);
    }
    const groups = document.querySelector("#groups tbody");
    groups.replaceChildren();
    for (const g of s.groups) {
      const row = document.createElement("tr");
      row.dataset.group = g.group;
      row.dataset.leader = g.leader ?? "";
      cell(row, g.group);
      cell(row, g.role, g.role === "leader" ? "text leader" : "text");
      cell(row, g.leader ?? "none");
      cell(row, g.term);
      cell(row, g.commit);
      cell(row, g.applied);
      cell(row, g.quiesced ? "quiesced" : "active", "text");
      cell(row, g.voters.join(", "), "text");
      cell(row, g.followers.map(f => `${f.node}: ${f.lag}${f.snapshot ? " (snapshot)" : ""}`).join("; "), "text");
      groups.appendChild(row);
    }
    document.getElementById("error").textContent = "";
    document.body.dataset.loaded = "true";
  } catch (e) {
    document.getElementById("error").textContent = "refresh failed: " + e;
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
"##;
