//! TLS settings from flags: the client's rustls config for `wss://` targets
//! (`--ca`, `--insecure`, `--sni`, `--cert/--key`, `--no-tls-resume`) and the
//! built-in server's (`serve --tls-cert/--tls-key`, `--tls-self-signed`, and the
//! embedded server of `run --tls`). Files are read and checked here, before the
//! run: an unreadable or malformed certificate or key is a usage error that names
//! the flag and the file.
//!
//! Part of the configuration stage: it must never import the engine, the shards,
//! the collector or the reports.

use crate::error::{Error, Result};
use crate::net::tls::{provider, ClientTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;

/// What the client's TLS is made from (the load flags that concern it).
pub struct ClientFlags<'a> {
    pub ca: &'a [std::path::PathBuf],
    pub insecure: bool,
    pub sni: Option<&'a str>,
    pub cert: Option<&'a Path>,
    pub key: Option<&'a Path>,
    pub no_resume: bool,
}

impl ClientFlags<'_> {
    fn any(&self) -> Option<&'static str> {
        if !self.ca.is_empty() {
            Some("--ca")
        } else if self.insecure {
            Some("--insecure")
        } else if self.sni.is_some() {
            Some("--sni")
        } else if self.cert.is_some() {
            Some("--cert")
        } else if self.no_resume {
            Some("--no-tls-resume")
        } else {
            None
        }
    }
}

/// The client's TLS for a run: None when no target is `wss://`. `extra_root` is
/// the embedded server's own CA (`run --tls`).
pub fn client(
    f: &ClientFlags,
    wss: bool,
    extra_root: Option<&CertificateDer<'static>>,
) -> Result<Option<ClientTls>> {
    if !wss {
        return match f.any() {
            Some(flag) => Err(Error::usage(format!(
                "{flag} applies to wss:// targets only; no target is wss:// (with no URL, add --tls to load the built-in server over TLS)"
            ))),
            None => Ok(None),
        };
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::usage(format!("TLS: {e}")))?;
    let builder = if f.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if extra_root.is_none() {
            // The system's roots (a bad one among them is skipped, as curl does).
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
        if let Some(root) = extra_root {
            roots
                .add(root.clone())
                .map_err(|e| Error::usage(format!("TLS: the embedded server's CA: {e}")))?;
        }
        for path in f.ca {
            let certs = read_certs(path, "--ca")?;
            for c in certs {
                roots.add(c).map_err(|e| {
                    Error::usage(format!(
                        "--ca {}: a certificate in it is not a usable CA: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        if roots.is_empty() {
            return Err(Error::usage(
                "wss://: no trusted CA certificates: the system has none; pass --ca FILE (PEM), or --insecure to skip verification",
            ));
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match (f.cert, f.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "--cert")?;
            let key = read_key(key, "--key")?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                Error::usage(format!(
                    "--cert/--key: {e} (does the key belong to the certificate?)"
                ))
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if f.no_resume {
        config.resumption = rustls::client::Resumption::disabled();
    } else {
        // Enough for every connection of a shard to keep the tickets of a server.
        config.resumption = rustls::client::Resumption::in_memory_sessions(4096);
    }
    let sni = f
        .sni
        .map(|name| {
            ServerName::try_from(name.to_string()).map_err(|_| {
                Error::usage(format!("--sni '{name}' is not a DNS name or an IP address"))
            })
        })
        .transpose()?;
    Ok(Some(ClientTls {
        config: Arc::new(config),
        sni,
        insecure: f.insecure,
        resume: !f.no_resume,
    }))
}

/// The built-in server's TLS config from a certificate chain and its key.
pub fn server(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::usage(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            Error::usage(format!(
                "--tls-cert/--tls-key: {e} (does the key belong to the certificate?)"
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Resumption: session IDs in memory for TLS 1.2, tickets for TLS 1.3.
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(65_536);
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()
        .map_err(|e| Error::usage(format!("TLS: {e}")))?;
    Ok(Arc::new(config))
}

/// The server's TLS from `--tls-cert`/`--tls-key` files.
pub fn server_from_files(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    server(read_certs(cert, "--tls-cert")?, read_key(key, "--tls-key")?)
}

/// A self-signed server for `names`: its config and the CA a client trusts.
pub fn self_signed_server(
    names: &[String],
) -> Result<(Arc<rustls::ServerConfig>, crate::net::tls::SelfSigned)> {
    let made = crate::net::tls::self_signed(names).map_err(Error::usage)?;
    let config = server(made.chain.clone(), made.key.clone_key())?;
    Ok((config, made))
}

/// Every certificate of a PEM file; none at all is an error.
fn read_certs(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>> {
    let text = read(path, flag)?;
    let certs: std::result::Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&text).collect();
    let certs = certs.map_err(|e| {
        Error::usage(format!(
            "{flag} {}: not a readable PEM certificate: {e}",
            path.display()
        ))
    })?;
    if certs.is_empty() {
        return Err(Error::usage(format!(
            "{flag} {}: no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
fn read_key(path: &Path, flag: &str) -> Result<PrivateKeyDer<'static>> {
    let text = read(path, flag)?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| {
        Error::usage(format!(
            "{flag} {}: no private key in it ({e}; expected PEM: -----BEGIN PRIVATE KEY-----, RSA or EC)",
            path.display()
        ))
    })
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::usage(format!("{flag} {}: {e}", path.display())))
}

/// `--insecure`: accepts any certificate, but still checks the handshake's
/// signatures with the provider's algorithms (the peer holds the key of what it
/// showed, whatever that is).
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> ClientFlags<'static> {
        ClientFlags {
            ca: &[],
            insecure: false,
            sni: None,
            cert: None,
            key: None,
            no_resume: false,
        }
    }

    #[test]
    fn tls_flags_without_a_wss_target_are_refused() {
        let f = ClientFlags {
            insecure: true,
            ..flags()
        };
        let e = client(&f, false, None).unwrap_err().to_string();
        assert!(e.contains("--insecure applies to wss://"), "{e}");
        assert!(client(&flags(), false, None).unwrap().is_none());
    }

    #[test]
    fn unreadable_and_malformed_files_name_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let missing = dir.path().join("missing.pem");
        for (path, why) in [(&junk, "no certificate in it"), (&missing, "No such file")] {
            let ca = [path.clone()];
            let f = ClientFlags { ca: &ca, ..flags() };
            let e = client(&f, true, None).unwrap_err().to_string();
            assert!(e.contains("--ca") && e.contains(why), "{e}");
        }
        let e = server_from_files(&junk, &junk).unwrap_err().to_string();
        assert!(
            e.contains("--tls-cert") && e.contains("no certificate"),
            "{e}"
        );
        let made = crate::net::tls::self_signed(&["localhost".into()]).unwrap();
        let cert = dir.path().join("ca.pem");
        std::fs::write(&cert, &made.ca_pem).unwrap();
        let e = server_from_files(&cert, &junk).unwrap_err().to_string();
        assert!(
            e.contains("--tls-key") && e.contains("no private key"),
            "{e}"
        );
        let bad_sni = ClientFlags {
            sni: Some("not a name!"),
            ..flags()
        };
        let e = client(&bad_sni, true, None).err().unwrap().to_string();
        assert!(e.contains("--sni"), "{e}");
    }
}
