//! TLS configuration: rustls with the ring provider, TLS 1.2 and 1.3.
//!
//! The atServer asks for (but does not require) a client certificate, as the
//! reference does: end-user clients present none, other atServers present
//! theirs, which `from:@other` checks later.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// Where the PEM files are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// CA bundle trusted for client certificates (and, later, outbound peers).
    pub ca: Option<std::path::PathBuf>,
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why a TLS configuration could not be built.
#[derive(Debug)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    Pem {
        path: std::path::PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    NoCertificate {
        path: std::path::PathBuf,
    },
    /// A certificate was refused as a trust root.
    BadRoot {
        path: std::path::PathBuf,
        source: rustls::Error,
    },
    /// rustls refused the configuration (versions, key and certificate).
    Config {
        what: &'static str,
        source: rustls::Error,
    },
    ClientVerifier(rustls::server::VerifierBuilderError),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Pem { path, source } => {
                write!(f, "cannot read PEM from {}: {source}", path.display())
            }
            TlsError::NoCertificate { path } => {
                write!(f, "no certificate found in {}", path.display())
            }
            TlsError::BadRoot { path, source } => {
                write!(f, "bad CA certificate in {}: {source}", path.display())
            }
            TlsError::Config { what, source } => write!(f, "{what}: {source}"),
            TlsError::ClientVerifier(source) => write!(f, "client verifier: {source}"),
        }
    }
}

impl std::error::Error for TlsError {}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |source| TlsError::Pem {
        path: path.to_path_buf(),
        source,
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<_, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Trust roots from a PEM bundle.
fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|source| TlsError::BadRoot {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(roots)
}

/// Builds the server-side rustls configuration from PEM files.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Pem {
        path: files.key.clone(),
        source,
    })?;
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|source| TlsError::Config {
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
        .map_err(|source| TlsError::Config {
            what: "certificate and key do not match",
            source,
        })?;
    Ok(Arc::new(config))
}

/// A client configuration trusting `ca` (tests, loadtest, outbound).
pub fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let roots = read_roots(ca)?;
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|source| TlsError::Config {
            what: "TLS versions",
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
