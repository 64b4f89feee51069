//! Production certificate loading: PEM files for the CA, the node certificate and its key.

mod common;

use std::path::PathBuf;

use common::*;
use multiraft_core::{Inbox, NodeId, Transport};
use multiraft_transport_quic::tls::{TlsConfig, TlsError};
use multiraft_transport_quic::{QuicConfig, QuicTransport};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("multiraft-quic-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_configured_from_pem_files_talk() {
    let dir = TempDir::new("pem");
    let ca = dev_ca();
    let ca_path = dir.0.join("ca.pem");
    std::fs::write(&ca_path, ca.cert_pem()).unwrap();
    let mut configs = Vec::new();
    for id in 1..=2 {
        let cert = ca.node(NodeId(id)).unwrap();
        let (c, k) = (
            dir.0.join(format!("node{id}.pem")),
            dir.0.join(format!("node{id}.key")),
        );
        std::fs::write(&c, &cert.cert_pem).unwrap();
        std::fs::write(&k, &cert.key_pem).unwrap();
        configs.push(TlsConfig::from_pem_files(cluster(), &ca_path, &c, &k).unwrap());
    }
    let t2 = QuicTransport::bind(QuicConfig::new(
        NodeId(2),
        loopback(),
        configs.pop().unwrap(),
    ))
    .unwrap();
    let (inbox, mut rx2) = Inbox::channel(16);
    t2.attach(NodeId(2), inbox).unwrap();
    let mut c1 = QuicConfig::new(NodeId(1), loopback(), configs.pop().unwrap());
    c1.peers.insert(NodeId(2), t2.local_addr().unwrap());
    let t1 = QuicTransport::bind(c1).unwrap();
    let probe = t1.clone();
    wait_until("connected", || probe.connected_peers() == [NodeId(2)]).await;
    t1.send(heartbeat_batch(1, 2, 9));
    let got = tokio::time::timeout(WAIT, rx2.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, heartbeat_batch(1, 2, 9));
    t1.close();
    t2.close();
}

#[test]
fn bad_pem_files_are_typed_errors() {
    let dir = TempDir::new("bad");
    let ca = dev_ca();
    let cert = ca.node(NodeId(1)).unwrap();
    let (ca_path, c, k) = (
        dir.0.join("ca.pem"),
        dir.0.join("n.pem"),
        dir.0.join("n.key"),
    );
    std::fs::write(&ca_path, ca.cert_pem()).unwrap();
    std::fs::write(&c, &cert.cert_pem).unwrap();
    std::fs::write(&k, "not a key").unwrap();
    let missing = dir.0.join("missing.pem");
    assert!(matches!(
        TlsConfig::from_pem_files(cluster(), &missing, &c, &k),
        Err(TlsError::Io { .. })
    ));
    assert!(matches!(
        TlsConfig::from_pem_files(cluster(), &ca_path, &c, &k),
        Err(TlsError::Pem(_))
    ));
    // A key file given as the certificate file: no certificate in it.
    std::fs::write(&k, &cert.key_pem).unwrap();
    assert!(matches!(
        TlsConfig::from_pem_files(cluster(), &ca_path, &k, &k),
        Err(TlsError::NoCertificates)
    ));
    // A mismatched key is refused when the configuration is built.
    let other = ca.node(NodeId(2)).unwrap();
    std::fs::write(&k, &other.key_pem).unwrap();
    let tls = TlsConfig::from_pem_files(cluster(), &ca_path, &c, &k).unwrap();
    assert!(tls.server_crypto().is_err());
}
