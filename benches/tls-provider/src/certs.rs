//! The servers' certificates: for each key type, a CA (the client's only root) and
//! a leaf for `localhost` signed by it, both keys of that type, as a server's chain
//! would be. The server sends the leaf; the client verifies the leaf's signature
//! against the CA and the server's handshake signature against the leaf.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fs;
use std::path::Path;

/// The server certificates measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA P-256 (TLS 1.3 scheme ecdsa_secp256r1_sha256).
    Ecdsa,
    /// RSA 2048 (TLS 1.3 scheme rsa_pss_rsae_sha256; the CA signs with PKCS#1 v1.5).
    Rsa,
}

impl KeyType {
    pub const ALL: [KeyType; 2] = [KeyType::Ecdsa, KeyType::Rsa];

    pub fn name(self) -> &'static str {
        match self {
            KeyType::Ecdsa => "ecdsa",
            KeyType::Rsa => "rsa",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            KeyType::Ecdsa => "ECDSA P-256",
            KeyType::Rsa => "RSA 2048",
        }
    }

    pub fn parse(s: &str) -> Option<KeyType> {
        KeyType::ALL.into_iter().find(|k| k.name() == s)
    }

    fn key_pair(self) -> Result<rcgen::KeyPair, rcgen::Error> {
        match self {
            KeyType::Ecdsa => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyType::Rsa => {
                rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
        }
    }
}

/// One server's certificates, in DER.
pub struct ServerCerts {
    pub ca: CertificateDer<'static>,
    pub leaf: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

impl ServerCerts {
    /// A fresh CA and leaf.
    pub fn generate(kind: KeyType) -> Result<ServerCerts, String> {
        let (ca, leaf, key) = generate_pem(kind).map_err(|e| format!("rcgen: {e}"))?;
        ServerCerts::from_pem(&ca, &leaf, &key)
    }

    /// The files that [`write`] left in `dir`.
    pub fn load(dir: &Path, kind: KeyType) -> Result<ServerCerts, String> {
        let read = |what: &str| {
            let path = dir.join(format!("{}-{what}.pem", kind.name()));
            fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
        };
        ServerCerts::from_pem(&read("ca")?, &read("leaf")?, &read("key")?)
    }

    fn from_pem(ca: &str, leaf: &str, key: &str) -> Result<ServerCerts, String> {
        Ok(ServerCerts {
            ca: CertificateDer::from_pem_slice(ca.as_bytes()).map_err(|e| format!("CA: {e}"))?,
            leaf: CertificateDer::from_pem_slice(leaf.as_bytes())
                .map_err(|e| format!("leaf: {e}"))?,
            key: PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| format!("key: {e}"))?,
        })
    }
}

/// CA certificate, leaf certificate and leaf key, in PEM.
fn generate_pem(kind: KeyType) -> Result<(String, String, String), rcgen::Error> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("tls-provider bench CA ({})", kind.label()),
    );
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, kind.key_pair()?)?;

    let mut leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = kind.key_pair()?;
    let leaf = leaf_params.signed_by(&leaf_key, &ca)?;
    Ok((ca.pem(), leaf.pem(), leaf_key.serialize_pem()))
}

/// Writes both key types' certificates into `dir` (for runs that share them).
pub fn write(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for kind in KeyType::ALL {
        let (ca, leaf, key) = generate_pem(kind).map_err(|e| format!("rcgen: {e}"))?;
        for (what, pem) in [("ca", ca), ("leaf", leaf), ("key", key)] {
            let path = dir.join(format!("{}-{what}.pem", kind.name()));
            fs::write(&path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}
