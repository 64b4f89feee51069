//! Development certificates (rcgen): a throwaway cluster CA and node certificates for tests
//! and the demo, plus deliberately flawed ones for negative tests. Never use these in
//! production: the CA key lives in memory and certificates are valid until the year 4096.
//!
//! ```
//! use multiraft_core::NodeId;
//! use multiraft_transport_quic::dev::DevCa;
//! use multiraft_transport_quic::tls::ClusterId;
//!
//! let ca = DevCa::new(ClusterId::new("demo").unwrap()).unwrap();
//! let tls = ca.tls_config(NodeId(1)).unwrap(); // CA + node-1.demo.multiraft
//! assert_eq!(tls.cluster.as_str(), "demo");
//! ```

use multiraft_core::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, date_time_ymd,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::tls::{ClusterId, Identity, TlsConfig, node_dns_name};

pub use rcgen::Error as DevCertError;

/// A development cluster CA that issues node certificates.
pub struct DevCa {
    cluster: ClusterId,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// A certificate (PEM and DER) and its private key. `Debug` elides the key.
#[derive(Clone)]
pub struct DevCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for DevCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[secret key elided]")
            .finish_non_exhaustive()
    }
}

impl DevCert {
    /// The certificate (alone in its chain) and key as an [`Identity`].
    pub fn identity(&self) -> Identity {
        Identity {
            cert_chain: vec![self.cert_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
        }
    }
}

/// What to put in a certificate [`DevCa::issue`] makes.
#[derive(Clone, Debug)]
pub struct CertSpec {
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// Start of validity, `(year, month, day)`.
    pub not_before: (i32, u8, u8),
    /// End of validity, `(year, month, day)`.
    pub not_after: (i32, u8, u8),
}

impl CertSpec {
    /// A certificate naming `names`, valid from 1975 to 4096.
    pub fn valid(names: Vec<String>) -> CertSpec {
        CertSpec {
            dns_names: names,
            not_before: (1975, 1, 1),
            not_after: (4096, 1, 1),
        }
    }
}

fn node_params(spec: &CertSpec) -> Result<CertificateParams, DevCertError> {
    let mut params = CertificateParams::new(spec.dns_names.clone())?;
    params.distinguished_name.push(
        DnType::CommonName,
        spec.dns_names.first().cloned().unwrap_or_default(),
    );
    params.not_before = date_time_ymd(spec.not_before.0, spec.not_before.1, spec.not_before.2);
    params.not_after = date_time_ymd(spec.not_after.0, spec.not_after.1, spec.not_after.2);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    Ok(params)
}

fn finish(cert: rcgen::Certificate, key: &KeyPair) -> DevCert {
    DevCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().clone(),
        key_der: key.serialize_der(),
    }
}

impl DevCa {
    /// A new CA for `cluster`, with a fresh ECDSA P-256 key.
    pub fn new(cluster: ClusterId) -> Result<DevCa, DevCertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("multiraft dev CA {cluster}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(DevCa { cluster, issuer })
    }

    /// The cluster this CA issues for.
    pub fn cluster(&self) -> &ClusterId {
        &self.cluster
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Issues a certificate as `spec` says, signed by this CA.
    pub fn issue(&self, spec: &CertSpec) -> Result<DevCert, DevCertError> {
        let key = KeyPair::generate()?;
        let cert = node_params(spec)?.signed_by(&key, &self.issuer)?;
        Ok(finish(cert, &key))
    }

    /// A valid certificate for `node` of this CA's cluster.
    pub fn node(&self, node: NodeId) -> Result<DevCert, DevCertError> {
        self.issue(&CertSpec::valid(vec![node_dns_name(&self.cluster, node)]))
    }

    /// A certificate for `node` that expired in 2001.
    pub fn expired_node(&self, node: NodeId) -> Result<DevCert, DevCertError> {
        self.issue(&CertSpec {
            not_before: (2000, 1, 1),
            not_after: (2001, 1, 1),
            ..CertSpec::valid(vec![node_dns_name(&self.cluster, node)])
        })
    }

    /// A certificate for `node` that becomes valid in 2200.
    pub fn not_yet_valid_node(&self, node: NodeId) -> Result<DevCert, DevCertError> {
        self.issue(&CertSpec {
            not_before: (2200, 1, 1),
            not_after: (2201, 1, 1),
            ..CertSpec::valid(vec![node_dns_name(&self.cluster, node)])
        })
    }

    /// A certificate signed by this CA but naming `node` of another cluster.
    pub fn node_of_cluster(
        &self,
        cluster: &ClusterId,
        node: NodeId,
    ) -> Result<DevCert, DevCertError> {
        self.issue(&CertSpec::valid(vec![node_dns_name(cluster, node)]))
    }

    /// A [`TlsConfig`] for `node`: this CA as the root, a fresh valid node certificate.
    pub fn tls_config(&self, node: NodeId) -> Result<TlsConfig, DevCertError> {
        Ok(self.tls_config_with(self.node(node)?))
    }

    /// A [`TlsConfig`] with this CA as the root and `cert` as the identity (possibly a
    /// flawed one, for negative tests).
    pub fn tls_config_with(&self, cert: DevCert) -> TlsConfig {
        TlsConfig {
            cluster: self.cluster.clone(),
            ca: vec![self.cert_der()],
            identity: cert.identity(),
        }
    }
}

/// A self-signed certificate naming `node` of `cluster` (chains to no CA).
pub fn self_signed_node(cluster: &ClusterId, node: NodeId) -> Result<DevCert, DevCertError> {
    let key = KeyPair::generate()?;
    let params = node_params(&CertSpec::valid(vec![node_dns_name(cluster, node)]))?;
    let cert = params.self_signed(&key)?;
    Ok(finish(cert, &key))
}
