//! Helpers shared by the integration tests: loopback transports, a raw quinn client that
//! can present any certificate and send any bytes, and bounded waits on conditions.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use multiraft_core::{GroupId, Inbox, Message, MessageBatch, MessageBody, NodeId, Transport};
use multiraft_transport_quic::dev::DevCa;
use multiraft_transport_quic::frame::{self, FrameLimits};
use multiraft_transport_quic::tls::{ClusterId, TlsConfig, crypto_provider, node_dns_name};
use multiraft_transport_quic::{QuicConfig, QuicTransport};
use quinn::crypto::rustls::QuicClientConfig;
use tokio::sync::mpsc::Receiver;

/// Every wait gives up after this long: generous, because CI shares 2 cores.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn cluster() -> ClusterId {
    ClusterId::new("test").unwrap()
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A transport for `node` on a free loopback port, attached to a fresh inbox.
pub fn bind(
    node: u64,
    tls: TlsConfig,
    peers: &[(u64, SocketAddr)],
) -> (QuicTransport, Receiver<MessageBatch>) {
    let mut config = QuicConfig::new(NodeId(node), loopback(), tls);
    for (id, addr) in peers {
        config.peers.insert(NodeId(*id), *addr);
    }
    let t = QuicTransport::bind(config).unwrap();
    let (inbox, rx) = Inbox::channel(1024);
    t.attach(NodeId(node), inbox).unwrap();
    (t, rx)
}

pub fn heartbeat_batch(from: u64, to: u64, group: u64) -> MessageBatch {
    MessageBatch {
        from: NodeId(from),
        to: NodeId(to),
        messages: vec![Message {
            group: GroupId(group),
            from: NodeId(from),
            to: NodeId(to),
            term: 1,
            body: MessageBody::HeartbeatResponse { round: 0 },
        }],
    }
}

pub fn framed(batch: &MessageBatch) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(batch, &FrameLimits::default(), &mut out).unwrap();
    out
}

/// Polls `cond` until it holds, at most [`WAIT`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for: {what}"));
}

/// A rustls client config as the transport builds it, but with any identity (or none)
/// and any ALPN, for negative tests.
pub fn client_crypto(
    ca: &[rustls::pki_types::CertificateDer<'static>],
    identity: Option<multiraft_transport_quic::tls::Identity>,
    alpn: &[u8],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in ca {
        roots.add(c.clone()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.cert_chain, id.key)
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    config
}

/// What happened to a raw client's attempt.
#[derive(Debug)]
pub enum Outcome {
    /// The handshake failed on the client side.
    HandshakeFailed(String),
    /// The connection closed (by the server) with this reason.
    Closed(quinn::ConnectionError),
    /// Still open (when asked not to wait: right after the write; otherwise after `WAIT`).
    StillOpen(quinn::Connection),
}

/// Connects to `addr` as `server_name` with `crypto`, writes `bytes` on one
/// unidirectional stream and finishes it, then, if `wait_for_close`, waits (bounded) for
/// the server to close the connection. The endpoint is returned to keep it alive.
pub async fn raw_attempt(
    crypto: rustls::ClientConfig,
    addr: SocketAddr,
    server_name: &str,
    bytes: &[u8],
    wait_for_close: bool,
) -> (Outcome, quinn::Endpoint) {
    let mut endpoint = quinn::Endpoint::client(loopback()).unwrap();
    let quic = QuicClientConfig::try_from(crypto).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let connecting = endpoint.connect(addr, server_name).unwrap();
    let conn = match tokio::time::timeout(WAIT, connecting).await {
        Err(_) => return (Outcome::HandshakeFailed("timeout".into()), endpoint),
        Ok(Err(e)) => return (Outcome::HandshakeFailed(e.to_string()), endpoint),
        Ok(Ok(c)) => c,
    };
    // With TLS 1.3 the client may finish before the server has judged its certificate:
    // try to send anyway; the server must refuse it.
    if let Ok(mut s) = conn.open_uni().await {
        let _ = s.write_all(bytes).await;
        let _ = s.finish();
    }
    if !wait_for_close {
        return (Outcome::StillOpen(conn), endpoint);
    }
    match tokio::time::timeout(WAIT, conn.closed()).await {
        Ok(reason) => (Outcome::Closed(reason), endpoint),
        Err(_) => (Outcome::StillOpen(conn), endpoint),
    }
}

/// The application close code of a closed outcome, if the server closed it that way.
pub fn app_code(o: &Outcome) -> Option<u32> {
    match o {
        Outcome::Closed(quinn::ConnectionError::ApplicationClosed(c)) => {
            Some(c.error_code.into_inner() as u32)
        }
        _ => None,
    }
}

/// A dev CA for the test cluster.
pub fn dev_ca() -> DevCa {
    DevCa::new(cluster()).unwrap()
}

pub fn name(node: u64) -> String {
    node_dns_name(&cluster(), NodeId(node))
}

/// Resident set size of this process, bytes (Linux).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
