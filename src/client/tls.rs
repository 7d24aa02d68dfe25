//! The client-side rustls configuration: the ring provider, TLS 1.3 and 1.2
//! (as the server offers), the CA bundle that signed the servers' certificates
//! and, for server-to-server connections, the certificate this server
//! presents as a client (server-to-server.md §2).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Which of the configuration's files a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemFile {
    /// The CA bundle the server certificates are checked against.
    Ca,
    /// The client certificate chain.
    ClientCertificate,
    /// The client certificate's private key.
    ClientKey,
}

impl fmt::Display for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PemFile::Ca => "CA certificates",
            PemFile::ClientCertificate => "client certificate",
            PemFile::ClientKey => "client key",
        })
    }
}

/// Why a client configuration could not be built.
#[derive(Debug)]
pub enum TlsConfigError {
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
    /// rustls refused the configuration (protocol versions, or a client
    /// certificate whose key does not match).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfigError::Pem { file, path, source } => {
                write!(
                    f,
                    "cannot read the {file} from {}: {source}",
                    path.display()
                )
            }
            TlsConfigError::CaRefused { path, source } => {
                write!(f, "bad CA certificate in {}: {source}", path.display())
            }
            TlsConfigError::Rustls(e) => write!(f, "TLS client configuration: {e}"),
        }
    }
}

impl std::error::Error for TlsConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsConfigError::Pem { source, .. } => Some(source),
            TlsConfigError::CaRefused { source, .. } | TlsConfigError::Rustls(source) => {
                Some(source)
            }
        }
    }
}

fn read_certificates(
    file: PemFile,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem_error = |source| TlsConfigError::Pem {
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

/// A client configuration trusting the CA certificates in `ca` and, when
/// `client_identity` names a certificate chain and its key (PEM files),
/// presenting that certificate to servers that ask for one.
pub fn config(
    ca: &Path,
    client_identity: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(PemFile::Ca, ca)? {
        roots
            .add(certificate)
            .map_err(|source| TlsConfigError::CaRefused {
                path: ca.to_path_buf(),
                source,
            })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsConfigError::Rustls)?
        .with_root_certificates(roots);
    let config = match client_identity {
        None => builder.with_no_client_auth(),
        Some((certificate_path, key_path)) => {
            let chain = read_certificates(PemFile::ClientCertificate, certificate_path)?;
            let key =
                PrivateKeyDer::from_pem_file(key_path).map_err(|source| TlsConfigError::Pem {
                    file: PemFile::ClientKey,
                    path: key_path.to_path_buf(),
                    source,
                })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsConfigError::Rustls)?
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_certificates_make_a_config_with_and_without_an_identity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = crate::devcerts::ensure(dir.path()).expect("certs");
        let plain = config(&certs.ca, None).expect("config");
        assert!(!plain.client_auth_cert_resolver.has_certs());
        let identity = config(&certs.ca, Some((&certs.cert, &certs.key))).expect("config");
        assert!(identity.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn missing_files_and_mismatched_keys_say_which_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = crate::devcerts::ensure(dir.path()).expect("certs");
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            config(&missing, None),
            Err(TlsConfigError::Pem {
                file: PemFile::Ca,
                ..
            })
        ));
        assert!(matches!(
            config(&certs.ca, Some((&certs.cert, &missing))),
            Err(TlsConfigError::Pem {
                file: PemFile::ClientKey,
                ..
            })
        ));
        // A key file holding no key, and a certificate file holding a key.
        assert!(matches!(
            config(&certs.ca, Some((&certs.key, &certs.key))),
            Err(TlsConfigError::Pem {
                file: PemFile::ClientCertificate,
                ..
            })
        ));
        let other = tempfile::tempdir().expect("tempdir");
        let other_certs = crate::devcerts::ensure(other.path()).expect("certs");
        let mismatch = config(&certs.ca, Some((&certs.cert, &other_certs.key)));
        assert!(
            matches!(mismatch, Err(TlsConfigError::Rustls(_))),
            "{mismatch:?}"
        );
    }
}
