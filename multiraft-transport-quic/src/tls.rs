//! Mutual TLS: node identities in certificates, rustls configurations, PEM loading.
//!
//! # Naming scheme
//!
//! Every node certificate is issued by the cluster CA and carries, as a DNS subject
//! alternative name,
//!
//! ```text
//! node-<node id in decimal>.<cluster id>.multiraft
//! ```
//!
//! for example `node-7.prod-eu.multiraft` for `NodeId(7)` in cluster `prod-eu`
//! ([`node_dns_name`]). A cluster id is one DNS label: 1 to 63 characters of `a-z`, `0-9`
//! and `-`, not starting or ending with `-` ([`ClusterId::new`]).
//!
//! - The **dialer** passes that name for the node it means to reach to `connect`, so rustls
//!   verifies that the server's certificate chains to the cluster CA *and* names that node in
//!   that cluster.
//! - The **server** requires a client certificate chaining to the cluster CA
//!   ([`WebPkiClientVerifier`]); after the handshake the transport reads the node id from the
//!   certificate's SAN ([`peer_node_id`]). A certificate with no name for this cluster, or
//!   names for two different nodes, is refused. Every inbound batch's `from` must equal that
//!   node id.
//!
//! Both sides speak TLS 1.3 only, with ALPN [`ALPN`], no 0-RTT, and the ring provider
//! (`builder_with_provider`, never the process-default provider).

use std::path::Path;
use std::sync::Arc;

use multiraft_core::NodeId;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The ALPN protocol both sides must offer; anything else fails the handshake.
pub const ALPN: &[u8] = b"multiraft/1";

/// The last label of every node name.
pub const NAME_SUFFIX: &str = "multiraft";

/// The ring crypto provider every configuration of this crate is built with.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Errors loading certificates or building TLS configurations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Reading a file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file could not be parsed.
    #[error("parsing PEM: {0}")]
    Pem(#[from] rustls_pki_types::pem::Error),
    /// A PEM file that should hold certificates holds none.
    #[error("no certificate found")]
    NoCertificates,
    /// rustls refused the configuration (bad key, unusable certificate, ...).
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built (for example, no CA roots).
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The configuration has no cipher suite QUIC can use.
    #[error("QUIC crypto: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// An invalid cluster id.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// Why a peer's certificate does not name a node of this cluster.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The connection has no peer certificate.
    #[error("peer presented no certificate")]
    NoCertificate,
    /// The certificate could not be parsed.
    #[error("unparsable peer certificate")]
    BadCertificate,
    /// No SAN of the form `node-<id>.<cluster>.multiraft` for this cluster.
    #[error("certificate names no node of cluster {cluster}")]
    NoNodeName {
        /// This node's cluster.
        cluster: String,
    },
    /// The certificate names more than one node of this cluster.
    #[error("certificate names several nodes of cluster {cluster}")]
    Ambiguous {
        /// This node's cluster.
        cluster: String,
    },
    /// A cluster id that is not one DNS label.
    #[error("invalid cluster id {0:?}: use 1-63 of a-z, 0-9, '-', not at either end")]
    InvalidClusterId(String),
}

/// A cluster's name, one DNS label; part of every node certificate's name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClusterId(String);

impl ClusterId {
    /// Checks that `id` is one DNS label of `a-z`, `0-9` and `-`.
    pub fn new(id: impl Into<String>) -> Result<ClusterId, IdentityError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 63
            && !id.starts_with('-')
            && !id.ends_with('-')
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(ClusterId(id))
        } else {
            Err(IdentityError::InvalidClusterId(id))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClusterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The DNS name that identifies `node` of `cluster`: `node-<id>.<cluster>.multiraft`.
pub fn node_dns_name(cluster: &ClusterId, node: NodeId) -> String {
    format!("node-{}.{}.{NAME_SUFFIX}", node.0, cluster.0)
}

/// The node `name` identifies in `cluster`, if it is a node name of that cluster.
pub fn parse_node_dns_name(name: &str, cluster: &ClusterId) -> Option<NodeId> {
    let rest = name.strip_prefix("node-")?;
    let (id, rest) = rest.split_once('.')?;
    let (c, suffix) = rest.split_once('.')?;
    if c != cluster.0 || suffix != NAME_SUFFIX {
        return None;
    }
    // Canonical decimal only: no sign, no leading zeros, so one node has one name.
    if id.is_empty()
        || (id.len() > 1 && id.starts_with('0'))
        || !id.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    id.parse().ok().map(NodeId)
}

/// The node a (chain-verified) end-entity certificate names in `cluster`.
pub fn peer_node_id(
    cert: &CertificateDer<'_>,
    cluster: &ClusterId,
) -> Result<NodeId, IdentityError> {
    let parsed =
        webpki::EndEntityCert::try_from(cert).map_err(|_| IdentityError::BadCertificate)?;
    let mut found: Option<NodeId> = None;
    for name in parsed.valid_dns_names() {
        if let Some(id) = parse_node_dns_name(name, cluster) {
            match found {
                Some(other) if other != id => {
                    return Err(IdentityError::Ambiguous {
                        cluster: cluster.0.clone(),
                    });
                }
                _ => found = Some(id),
            }
        }
    }
    found.ok_or_else(|| IdentityError::NoNodeName {
        cluster: cluster.0.clone(),
    })
}

/// The node the peer of an established connection authenticated as.
pub fn connection_peer(
    conn: &quinn::Connection,
    cluster: &ClusterId,
) -> Result<NodeId, IdentityError> {
    let identity = conn.peer_identity().ok_or(IdentityError::NoCertificate)?;
    let chain = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| IdentityError::NoCertificate)?;
    let leaf = chain.first().ok_or(IdentityError::NoCertificate)?;
    peer_node_id(leaf, cluster)
}

/// A certificate chain (leaf first) and its private key.
#[derive(Debug)]
pub struct Identity {
    /// The chain, leaf first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// Parses a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1
    /// or SEC1).
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Identity, TlsError> {
        let cert_chain = certs_from_pem(cert_chain_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)?;
        Ok(Identity { cert_chain, key })
    }

    /// Reads [`from_pem`](Identity::from_pem) input from two files.
    pub fn from_pem_files(cert_chain: &Path, key: &Path) -> Result<Identity, TlsError> {
        Identity::from_pem(&read(cert_chain)?, &read(key)?)
    }
}

/// Parses every certificate in a PEM buffer; at least one is required.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates);
    }
    Ok(certs)
}

/// Reads the cluster CA certificate(s) from a PEM file.
pub fn load_ca_pem_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    certs_from_pem(&read(path)?)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Everything a node needs for mutual TLS.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// The cluster this node belongs to; peers must hold certificates naming it.
    pub cluster: ClusterId,
    /// The cluster CA certificate(s) that every peer certificate must chain to.
    pub ca: Vec<CertificateDer<'static>>,
    /// This node's certificate chain and key.
    pub identity: Identity,
}

impl TlsConfig {
    /// Loads the CA, certificate chain and key from PEM files.
    pub fn from_pem_files(
        cluster: ClusterId,
        ca: &Path,
        cert_chain: &Path,
        key: &Path,
    ) -> Result<TlsConfig, TlsError> {
        Ok(TlsConfig {
            cluster,
            ca: load_ca_pem_file(ca)?,
            identity: Identity::from_pem_files(cert_chain, key)?,
        })
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        for ca in &self.ca {
            roots.add(ca.clone())?;
        }
        Ok(roots)
    }

    /// The rustls server configuration: TLS 1.3 only, client certificates required and
    /// verified against the cluster CA, ALPN [`ALPN`], no 0-RTT.
    pub fn server_crypto(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = crypto_provider();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()?), provider.clone())
                .build()?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                self.identity.cert_chain.clone(),
                self.identity.key.clone_key(),
            )?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.max_early_data_size = 0;
        Ok(config)
    }

    /// The rustls client configuration: TLS 1.3 only, the server verified against the
    /// cluster CA (and, at `connect`, against the node name), this node's certificate
    /// offered, ALPN [`ALPN`], no 0-RTT.
    pub fn client_crypto(&self) -> Result<rustls::ClientConfig, TlsError> {
        let mut config = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(
                self.identity.cert_chain.clone(),
                self.identity.key.clone_key(),
            )?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.enable_early_data = false;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_canonical() {
        let c = ClusterId::new("prod-eu").unwrap();
        assert_eq!(node_dns_name(&c, NodeId(7)), "node-7.prod-eu.multiraft");
        assert_eq!(
            parse_node_dns_name("node-7.prod-eu.multiraft", &c),
            Some(NodeId(7))
        );
        for bad in [
            "node-07.prod-eu.multiraft",
            "node-+7.prod-eu.multiraft",
            "node-.prod-eu.multiraft",
            "node-7.prod.multiraft",
            "node-7.prod-eu.multiraft.evil",
            "node-7.prod-eu.example",
            "node-99999999999999999999.prod-eu.multiraft",
        ] {
            assert_eq!(parse_node_dns_name(bad, &c), None, "{bad}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", &"x".repeat(64)] {
            assert!(ClusterId::new(bad).is_err(), "{bad}");
        }
    }
}
