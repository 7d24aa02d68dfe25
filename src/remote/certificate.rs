//! Whether another atServer's certificate is for the host the atDirectory
//! gave for the atSign it claims (server-to-server.md §2).
//!
//! When a connection says `from:@alice` and @alice is not hosted here, the
//! peer must have presented a client certificate (TLS already checked that
//! it chains to a trusted CA and allows clientAuth); `from` then resolves
//! @alice and accepts only if that certificate names the host the directory
//! returned. Names are matched the way TLS matches a server's name (RFC
//! 6125, by webpki): a DNS name against the certificate's DNS SAN entries
//! (case-insensitively, a `*.` wildcard standing for exactly one label), an
//! IP address against its IP SAN entries. The reference instead looks for
//! the host as a substring of the subject, the SAN list and the CN, which
//! lets a certificate for `evil-localhost.example` pass for `localhost`;
//! see docs/COMPATIBILITY.md.

use rustls::pki_types::{CertificateDer, ServerName};

/// Whether `certificate` (DER, the peer's end-entity certificate) is valid
/// for `host` (a DNS name, or an IP address, IPv6 with or without
/// brackets). A certificate that does not parse names nothing.
pub fn certificate_names_host(certificate: &CertificateDer<'_>, host: &str) -> bool {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let Ok(name) = ServerName::try_from(host) else {
        return false;
    };
    let Ok(certificate) = webpki::EndEntityCert::try_from(certificate) else {
        return false;
    };
    certificate.verify_is_valid_for_subject_name(&name).is_ok()
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::UnixTime;
    use rustls::pki_types::pem::PemObject;

    use super::*;

    /// The dev leaf (SAN `localhost`, `127.0.0.1`, `::1`) and the dev CA.
    fn dev_leaf_and_ca() -> (CertificateDer<'static>, CertificateDer<'static>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = crate::devcerts::ensure(dir.path()).expect("certs");
        let leaf = CertificateDer::pem_file_iter(&certs.cert)
            .expect("chain")
            .next()
            .expect("a leaf")
            .expect("pem");
        let ca = CertificateDer::from_pem_file(&certs.ca).expect("ca");
        (leaf, ca)
    }

    /// A self-signed certificate for `names` (DNS names or IP addresses).
    fn certificate_for(names: &[&str]) -> CertificateDer<'static> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(names).expect("params");
        params.self_signed(&key).expect("certificate").der().clone()
    }

    #[test]
    fn the_dev_certificate_names_its_loopback_names_and_nothing_else() {
        let (leaf, _) = dev_leaf_and_ca();
        for host in ["localhost", "LocalHost", "127.0.0.1", "::1", "[::1]"] {
            assert!(certificate_names_host(&leaf, host), "{host}");
        }
        for host in [
            "other.example",
            "host",
            "local",
            "localhost.example",
            "127.0.0.2",
            "::2",
            "",
            "not a name",
        ] {
            assert!(!certificate_names_host(&leaf, host), "{host}");
        }
    }

    #[test]
    fn names_are_whole_san_entries_not_substrings() {
        let peer = certificate_for(&["evil-localhost.example"]);
        assert!(certificate_names_host(&peer, "evil-localhost.example"));
        assert!(!certificate_names_host(&peer, "localhost"));
        assert!(!certificate_names_host(&peer, "localhost.example"));
    }

    #[test]
    fn a_wildcard_stands_for_exactly_one_label() {
        let peer = certificate_for(&["*.swarm.example", "10.1.2.3"]);
        assert!(certificate_names_host(&peer, "a1b2.swarm.example"));
        assert!(!certificate_names_host(&peer, "swarm.example"));
        assert!(!certificate_names_host(&peer, "x.a1b2.swarm.example"));
        assert!(certificate_names_host(&peer, "10.1.2.3"));
        assert!(!certificate_names_host(&peer, "10.1.2.4"));
    }

    #[test]
    fn bytes_that_are_no_certificate_name_nothing() {
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        assert!(!certificate_names_host(&junk, "localhost"));
    }

    #[test]
    fn the_dev_leaf_is_valid_for_client_and_server_authentication() {
        // The EKU must name clientAuth explicitly: "allowed if absent" is
        // not enough for a certificate meant to work in both roles.
        const CLIENT_AUTH: &[u8] = &[0x2b, 6, 1, 5, 5, 7, 3, 2];
        const SERVER_AUTH: &[u8] = &[0x2b, 6, 1, 5, 5, 7, 3, 1];
        let (leaf, ca) = dev_leaf_and_ca();
        let anchors = [webpki::anchor_from_trusted_cert(&ca).expect("anchor")];
        let leaf = webpki::EndEntityCert::try_from(&leaf).expect("leaf");
        for usage in [CLIENT_AUTH, SERVER_AUTH] {
            let verified = leaf.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &[],
                UnixTime::now(),
                webpki::KeyUsage::required(usage),
                None,
                None,
            );
            assert!(verified.is_ok(), "{usage:?}: {:?}", verified.err());
        }
    }
}
