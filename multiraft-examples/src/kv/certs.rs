//! Development certificates for a kv cluster, written to and read from a directory:
//! `ca.pem`, and `node-N.pem` with `node-N.key` for each node.

use std::path::Path;

use multiraft_core::NodeId;
use multiraft_transport_quic::dev::DevCa;
use multiraft_transport_quic::tls::{ClusterId, TlsConfig};

/// The cluster name every kv node's certificate carries.
pub const CLUSTER: &str = "kv";

/// Writes a new development CA and a certificate and key for each of `nodes` into `dir`
/// (created if missing). The CA's key is not kept: nodes cannot be added later with it, so
/// issue every node id the cluster may ever use now. For development only: the keys are
/// written unencrypted.
pub fn generate(dir: &Path, nodes: impl IntoIterator<Item = u64>) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cluster = ClusterId::new(CLUSTER).map_err(|e| e.to_string())?;
    let ca = DevCa::new(cluster).map_err(|e| e.to_string())?;
    write(&dir.join("ca.pem"), &ca.cert_pem())?;
    for n in nodes {
        let cert = ca.node(NodeId(n)).map_err(|e| e.to_string())?;
        write(&dir.join(format!("node-{n}.pem")), &cert.cert_pem)?;
        write(&dir.join(format!("node-{n}.key")), &cert.key_pem)?;
    }
    Ok(())
}

/// Node `node`'s TLS configuration from the files [`generate`] wrote in `dir`.
pub fn load(dir: &Path, node: NodeId) -> Result<TlsConfig, String> {
    let cluster = ClusterId::new(CLUSTER).map_err(|e| e.to_string())?;
    TlsConfig::from_pem_files(
        cluster,
        &dir.join("ca.pem"),
        &dir.join(format!("node-{}.pem", node.0)),
        &dir.join(format!("node-{}.key", node.0)),
    )
    .map_err(|e| format!("certificates of node {} in {}: {e}", node.0, dir.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
