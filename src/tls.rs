//! TLS configuration for both ends: rustls with the ring provider, TLS 1.3
//! and 1.2, certificates and keys from PEM files.
//!
//! The atServer asks for (but does not require) a client certificate, as the
//! reference does: end-user clients present none, other atServers present
//! theirs. A client trusts the CA bundle that signed the servers'
//! certificates and, on server-to-server connections, presents this
//! server's certificate (server-to-server.md §2).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// Where a server's PEM files are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA bundle trusted in both directions: for the client certificates
    /// of other atServers connecting here, and for the server certificates
    /// of the atServers and the atDirectory this server connects to (as the
    /// reference's one `trustedCertificateLocation`).
    pub ca: Option<PathBuf>,
}

/// The crypto provider of every configuration: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Which of a configuration's files a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemFile {
    /// A CA bundle (trusted roots).
    Ca,
    /// A certificate chain (the server's, or the one presented as a client).
    Certificate,
    /// The private key of that chain.
    Key,
}

impl fmt::Display for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PemFile::Ca => "CA certificates",
            PemFile::Certificate => "certificate",
            PemFile::Key => "private key",
        })
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read or holds no valid PEM of the right kind.
    Pem {
        file: PemFile,
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    /// A CA certificate parsed but rustls refused it as a trust anchor.
    CaRefused {
        path: PathBuf,
        source: rustls::Error,
    },
    /// rustls refused the configuration (protocol versions, or a
    /// certificate whose key does not match).
    Rustls {
        what: &'static str,
        source: rustls::Error,
    },
    ClientVerifier(rustls::server::VerifierBuilderError),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Pem { file, path, source } => {
                write!(
                    f,
                    "cannot read the {file} from {}: {source}",
                    path.display()
                )
            }
            TlsError::CaRefused { path, source } => {
                write!(f, "bad CA certificate in {}: {source}", path.display())
            }
            TlsError::Rustls { what, source } => write!(f, "{what}: {source}"),
            TlsError::ClientVerifier(source) => write!(f, "client verifier: {source}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Pem { source, .. } => Some(source),
            TlsError::CaRefused { source, .. } | TlsError::Rustls { source, .. } => Some(source),
            TlsError::ClientVerifier(source) => Some(source),
        }
    }
}

fn read_certificates(file: PemFile, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |source| TlsError::Pem {
        file,
        path: path.to_path_buf(),
        source,
    };
    let certificates: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<_, _>>()
        .map_err(pem_error)?;
    if certificates.is_empty() {
        return Err(pem_error(rustls::pki_types::pem::Error::NoItemsFound));
    }
    Ok(certificates)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem {
        file: PemFile::Key,
        path: path.to_path_buf(),
        source,
    })
}

/// Trust roots from a PEM bundle.
fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(PemFile::Ca, path)? {
        roots
            .add(certificate)
            .map_err(|source| TlsError::CaRefused {
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(roots)
}

/// The server-side configuration. With a CA bundle, client certificates
/// are asked for and checked against it, but not required.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = read_certificates(PemFile::Certificate, &files.cert)?;
    let key = read_key(&files.key)?;
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)
        .map_err(|source| TlsError::Rustls {
            what: "TLS versions",
            source,
        })?;
    let builder = match &files.ca {
        Some(ca) => {
            let roots = read_roots(ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(TlsError::ClientVerifier)?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Rustls {
            what: "certificate and key do not match",
            source,
        })?;
    Ok(Arc::new(config))
}

/// A client configuration trusting the CA certificates in `ca` and, when
/// `client_identity` names a certificate chain and its key (PEM files),
/// presenting that certificate to servers that ask for one.
pub fn client_config(
    ca: &Path,
    client_identity: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let roots = read_roots(ca)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|source| TlsError::Rustls {
            what: "TLS versions",
            source,
        })?
        .with_root_certificates(roots);
    let config = match client_identity {
        None => builder.with_no_client_auth(),
        Some((certificate_path, key_path)) => {
            let chain = read_certificates(PemFile::Certificate, certificate_path)?;
            let key = read_key(key_path)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|source| TlsError::Rustls {
                    what: "client certificate and key do not match",
                    source,
                })?
        }
    };
    Ok(Arc::new(config))
}

/// The configuration of the server's outbound connections (to the
/// atDirectory and other atServers), built once at start: it trusts the CA
/// bundle of `files` (nothing without one, so no outbound connection can
/// succeed) and presents the server's own certificate chain and key as its
/// client certificate, which a peer's `from:` check matches against the
/// host the directory gives for this server's atSign.
pub fn outbound_config(files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let roots = match &files.ca {
        Some(ca) => read_roots(ca)?,
        None => RootCertStore::empty(),
    };
    let chain = read_certificates(PemFile::Certificate, &files.cert)?;
    let key = read_key(&files.key)?;
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|source| TlsError::Rustls {
            what: "TLS versions",
            source,
        })?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|source| TlsError::Rustls {
            what: "client certificate and key do not match",
            source,
        })?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbound_config_presents_the_server_certificate_and_trusts_the_bundle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = crate::devcerts::ensure(dir.path()).expect("certs");
        let mut files = TlsFiles {
            cert: certs.cert.clone(),
            key: certs.key.clone(),
            ca: Some(certs.ca.clone()),
        };
        let outbound = outbound_config(&files).expect("config");
        assert!(outbound.client_auth_cert_resolver.has_certs());
        files.ca = None;
        let untrusting = outbound_config(&files).expect("config without a bundle");
        assert!(untrusting.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn the_dev_certificates_make_a_client_config_with_and_without_an_identity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = crate::devcerts::ensure(dir.path()).expect("certs");
        let files = TlsFiles {
            cert: certs.cert.clone(),
            key: certs.key.clone(),
            ca: Some(certs.ca.clone()),
        };
        server_config(&files).expect("server config");
        let plain = client_config(&certs.ca, None).expect("config");
        assert!(!plain.client_auth_cert_resolver.has_certs());
        let identity = client_config(&certs.ca, Some((&certs.cert, &certs.key))).expect("config");
        assert!(identity.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn missing_files_and_mismatched_keys_say_which_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = crate::devcerts::ensure(dir.path()).expect("certs");
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            client_config(&missing, None),
            Err(TlsError::Pem {
                file: PemFile::Ca,
                ..
            })
        ));
        assert!(matches!(
            client_config(&certs.ca, Some((&certs.cert, &missing))),
            Err(TlsError::Pem {
                file: PemFile::Key,
                ..
            })
        ));
        // A key file holding no certificate.
        assert!(matches!(
            client_config(&certs.ca, Some((&certs.key, &certs.key))),
            Err(TlsError::Pem {
                file: PemFile::Certificate,
                ..
            })
        ));
        let other = tempfile::tempdir().expect("tempdir");
        let other_certs = crate::devcerts::ensure(other.path()).expect("certs");
        let mismatch = client_config(&certs.ca, Some((&certs.cert, &other_certs.key)));
        assert!(
            matches!(mismatch, Err(TlsError::Rustls { .. })),
            "{mismatch:?}"
        );
        let server_mismatch = server_config(&TlsFiles {
            cert: certs.cert.clone(),
            key: other_certs.key.clone(),
            ca: None,
        });
        assert!(matches!(server_mismatch, Err(TlsError::Rustls { .. })));
    }
}
