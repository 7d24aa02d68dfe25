//! Development certificates: a small CA and a leaf for loopback.
//!
//! webpki refuses a self-signed certificate with `CA:TRUE` as a server
//! certificate, so `dev` makes a CA and a separate leaf (`CA:FALSE`,
//! serverAuth and clientAuth, SAN `localhost`, `127.0.0.1`, `::1`).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// Paths of a generated set.
#[derive(Debug, Clone)]
pub struct DevCerts {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Writes `ca.pem`, `server.pem` (leaf + CA chain) and `server.key` into
/// `dir`, reusing them when all three already exist.
pub fn ensure(dir: &Path) -> Result<DevCerts, String> {
    let certs = DevCerts {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    if certs.ca.exists() && certs.cert.exists() && certs.key.exists() {
        return Ok(certs);
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let fail = |e: rcgen::Error| format!("certificate generation failed: {e}");

    let ca_key = KeyPair::generate().map_err(fail)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    let mut ca_name = DistinguishedName::new();
    ca_name.push(DnType::CommonName, "atserver dev CA");
    ca_params.distinguished_name = ca_name;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(fail)?;

    let leaf_key = KeyPair::generate().map_err(fail)?;
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_string()]).map_err(fail)?;
    leaf_params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    leaf_params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
    let mut leaf_name = DistinguishedName::new();
    leaf_name.push(DnType::CommonName, "localhost");
    leaf_params.distinguished_name = leaf_name;
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf_params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let leaf_cert = leaf_params
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .map_err(fail)?;

    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(&certs.ca, &ca_cert.pem())?;
    write(
        &certs.cert,
        &format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
    )?;
    crate::files::write_private(&certs.key, leaf_key.serialize_pem().as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", certs.key.display()))?;
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificates_are_kept_and_reused() {
        // That they load into rustls is checked by `tls`'s tests.
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = ensure(dir.path()).expect("generate");
        let again = ensure(dir.path()).expect("reuse");
        assert_eq!(std::fs::read(&again.ca).ok(), std::fs::read(&certs.ca).ok());
    }
}
