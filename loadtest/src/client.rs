//! Where the server under test is and how to reach it, with the library's
//! blocking client (`atserver::client::blocking`) for everything off the
//! measured path: setup, preload, pkam logins and idle connections. The
//! request scenarios' event loop (`evloop`) drives its own sockets but frames
//! replies with the library's `ReplyFramer`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use atserver::client::ClientError;
use atserver::client::auth::{KeyError, PkamKey};
use atserver::client::blocking::Client;
use rustls::pki_types::ServerName;

/// Every socket read and write gives up after this long, so nothing hangs.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to connect and how to trust the server.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub tls: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
    pub atsign: String,
}

impl Target {
    /// TCP connect, TLS handshake, and the `@` greeting.
    pub fn connect(&self) -> Result<Client, ClientError> {
        Client::connect(
            self.addr,
            Arc::clone(&self.tls),
            self.server_name.clone(),
            IO_TIMEOUT,
        )
    }
}

/// The committed RSA-2048 fixture (PKCS#8 DER); its public key text is the
/// committed `pkam-rsa2048.spki.b64`.
const RSA_PKCS8: &[u8] = include_bytes!("../fixtures/pkam-rsa2048.pk8");

/// The RSA key every run signs with unless `--pkam-algo ecdsa`.
pub fn rsa_fixture_key() -> Result<PkamKey, KeyError> {
    PkamKey::rsa_from_pkcs8(RSA_PKCS8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rsa_fixture_loads_and_matches_its_committed_public_key() {
        let key = rsa_fixture_key().expect("fixture");
        assert_eq!(
            key.public_key_text(),
            include_str!("../fixtures/pkam-rsa2048.spki.b64").trim()
        );
        let line = key.pkam_line("_s@alice:n", None).expect("sign");
        assert!(line.starts_with("pkam:signingAlgo:rsa2048:hashingAlgo:sha256:"));
    }
}
