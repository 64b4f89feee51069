//! A QUIC transport for multiraft nodes.
//!
//! Not built yet. This crate will hold an implementation of `multiraft_core::Transport` on
//! quinn and rustls (ring provider): one connection per peer node with mutual TLS bound to
//! node identities, versioned length-prefixed postcard frames checked against named limits,
//! lanes so heartbeats never wait behind bulk data, and bounded queues. See the
//! transport-quic issue.
