//! `kv`: a sharded key-value service on multiraft, one process per node — what a
//! database builder would start from. Keys are spread over a fixed number of groups by a
//! stable hash ([`machine::group_of`]); each node keeps its log in redb and talks QUIC with
//! mutual TLS to the others; clients use HTTP:
//!
//! - `PUT /kv/{key}` (body: the value), `DELETE /kv/{key}`, `POST /kv/{key}/cas` (JSON
//!   `{"expected": ..., "new": ...}`, `null` for absent): proposed to the key's group from
//!   any node (a follower forwards to the leader); answered once applied;
//! - `GET /kv/{key}`: linearizable on any node (`?read=follower`, the default), or on the
//!   leader by ReadIndex (`?read=index`) or its lease (`?read=lease`);
//! - errors as JSON with the library's typed reason and whether the request definitely had
//!   no effect (`"definite"`); a node that cannot serve a request answers 421 with the
//!   leader's URL;
//! - `/` the status page, `/status.json`, `/metrics` (Prometheus);
//! - `/admin/…`: adding and removing nodes ([`admin`]).
//!
//! A node serves at most [`connections::MAX_HTTP_CONNECTIONS`] HTTP connections at once,
//! and closes one idle for [`connections::HTTP_IDLE_TIMEOUT`].
//!
//! The binary (`src/bin/kv.rs`) has subcommands `certs`, `node`, `cluster` and `load`.

pub mod admin;
pub mod certs;
pub mod client;
pub mod cluster;
pub mod connections;
pub mod http;
pub mod load;
pub mod machine;
pub mod server;
pub mod status;
