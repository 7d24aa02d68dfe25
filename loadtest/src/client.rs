//! A blocking TLS client for the atProtocol: one `rustls::StreamOwned` over a
//! `TcpStream` with TCP_NODELAY and read/write timeouts, reading whole
//! replies (`<payload>\n<prompt>`) in order, so pipelined replies can be
//! counted one by one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use rustls::pki_types::ServerName;

/// Every socket read and write gives up after this long, so nothing hangs.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes asked of the TLS stream per read.
const READ_CHUNK_BYTES: usize = 32 * 1024;

/// Where to connect and how to trust the server.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub tls: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
    pub atsign: String,
}

/// A failed exchange: I/O, timeout, closed connection or an unexpected reply.
#[derive(Debug, Clone)]
pub struct ConnError(pub String);

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn io_err(what: &str, e: std::io::Error) -> ConnError {
    ConnError(format!("{what}: {e}"))
}

/// Where a reply ends in `data`, given the prompt the connection is expected
/// to print: `Some((payload_end, reply_end))`, or `None` when more bytes are
/// needed. A payload never contains `\n@` (wire.md §4), so the first `\n`
/// followed by a prompt ends the reply. An owner-authenticated connection
/// may still print `@` alone for some errors; that is accepted too.
pub fn find_reply(data: &[u8], prompt: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(offset) = data.get(from..)?.iter().position(|&b| b == b'\n') {
        let newline = from + offset;
        let rest = data.get(newline + 1..)?;
        if rest.starts_with(prompt) {
            return Some((newline, newline + 1 + prompt.len()));
        }
        if rest.len() < prompt.len() && prompt.starts_with(rest) {
            return None;
        }
        if rest.first() == Some(&b'@') {
            return Some((newline, newline + 2));
        }
        from = newline + 1;
    }
    None
}

/// One connection.
pub struct Conn {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out as replies.
    consumed: usize,
    prompt: Vec<u8>,
}

impl Conn {
    /// TCP connect, TLS handshake, and the `@` greeting.
    pub fn connect(target: &Target) -> Result<Conn, ConnError> {
        let tcp = TcpStream::connect_timeout(&target.addr, IO_TIMEOUT)
            .map_err(|e| io_err("connect", e))?;
        tcp.set_nodelay(true)
            .map_err(|e| io_err("TCP_NODELAY", e))?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| io_err("read timeout", e))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))
            .map_err(|e| io_err("write timeout", e))?;
        let tls =
            rustls::ClientConnection::new(Arc::clone(&target.tls), target.server_name.clone())
                .map_err(|e| ConnError(format!("TLS client: {e}")))?;
        let mut conn = Conn {
            stream: rustls::StreamOwned::new(tls, tcp),
            buf: Vec::with_capacity(READ_CHUNK_BYTES),
            consumed: 0,
            prompt: b"@".to_vec(),
        };
        conn.fill()?;
        if conn.pending().first() != Some(&b'@') {
            return Err(ConnError(format!(
                "expected the `@` greeting, got {:?}",
                String::from_utf8_lossy(conn.pending())
            )));
        }
        conn.consumed += 1;
        Ok(conn)
    }

    /// The socket, the TLS session, the prompt and any plaintext received
    /// but not consumed, for a driver that takes the connection over.
    pub fn into_parts(self) -> (TcpStream, rustls::ClientConnection, Vec<u8>, Vec<u8>) {
        let pending = self.pending().to_vec();
        let rustls::StreamOwned { conn, sock } = self.stream;
        (sock, conn, self.prompt, pending)
    }

    fn pending(&self) -> &[u8] {
        self.buf.get(self.consumed..).unwrap_or_default()
    }

    /// Reads at least one more byte into the buffer.
    fn fill(&mut self) -> Result<(), ConnError> {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed.min(self.buf.len()));
            self.consumed = 0;
        }
        let mut chunk = [0u8; READ_CHUNK_BYTES];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(ConnError("connection closed by the server".into())),
            Ok(n) => {
                self.buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default());
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                let pending = self.pending();
                let shown = String::from_utf8_lossy(
                    pending.get(..pending.len().min(80)).unwrap_or_default(),
                );
                Err(ConnError(format!(
                    "no reply within {} s ({} bytes pending: {shown:?})",
                    IO_TIMEOUT.as_secs(),
                    pending.len()
                )))
            }
            Err(e) => Err(io_err("read", e)),
        }
    }

    /// Writes `bytes` and flushes them to the socket.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.stream
            .write_all(bytes)
            .map_err(|e| io_err("write", e))?;
        self.stream.flush().map_err(|e| io_err("flush", e))
    }

    /// The next reply's payload (`data:…` or `error:…`), reading as needed.
    pub fn reply(&mut self) -> Result<&[u8], ConnError> {
        loop {
            if let Some((payload_end, end)) = find_reply(self.pending(), &self.prompt) {
                let start = self.consumed;
                self.consumed = start + end;
                return Ok(self.buf.get(start..start + payload_end).unwrap_or_default());
            }
            self.fill()?;
        }
    }

    /// Sends one line and returns its reply payload as text.
    pub fn request(&mut self, line: &str) -> Result<String, ConnError> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.send(&bytes)?;
        Ok(String::from_utf8_lossy(self.reply()?).into_owned())
    }

    /// Expects `data:…` and returns what follows `data:`.
    pub fn data(&mut self, line: &str) -> Result<String, ConnError> {
        let reply = self.request(line)?;
        match reply.strip_prefix("data:") {
            Some(rest) => Ok(rest.to_string()),
            None => Err(ConnError(format!(
                "{} → {reply}",
                line.split(':').next().unwrap_or(line)
            ))),
        }
    }

    /// Says `@exit` and closes the TLS session; errors are irrelevant here.
    pub fn close(mut self) {
        let _ = self.stream.write_all(b"@exit\n");
        self.stream.conn.send_close_notify();
        let _ = self.stream.flush();
    }

    /// From now on the server prints `@<atsign>@` after each reply.
    fn set_owner_prompt(&mut self, atsign: &str) {
        self.prompt = format!("{atsign}@").into_bytes();
    }

    /// `from:` then `cram:`.
    pub fn cram(&mut self, atsign: &str, secret: &str) -> Result<(), ConnError> {
        let challenge = self.data(&format!("from:{atsign}"))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA512);
        ctx.update(secret.as_bytes());
        ctx.update(challenge.as_bytes());
        let digest: String = ctx
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.finish_auth(atsign, &format!("cram:{digest}"))
    }

    /// `from:` then `pkam:` signed with `key`.
    pub fn pkam(&mut self, atsign: &str, key: &PkamKey) -> Result<(), ConnError> {
        let challenge = self.data(&format!("from:{atsign}"))?;
        let line = key.pkam_line(&challenge)?;
        self.finish_auth(atsign, &line)
    }

    fn finish_auth(&mut self, atsign: &str, line: &str) -> Result<(), ConnError> {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        self.send(&bytes)?;
        // The reply's prompt is already the owner's on success.
        self.set_owner_prompt(atsign);
        let reply = String::from_utf8_lossy(self.reply()?).into_owned();
        if reply == "data:success" {
            Ok(())
        } else {
            self.prompt = b"@".to_vec();
            Err(ConnError(format!("authentication failed: {reply}")))
        }
    }
}

/// The private key a pkam client signs challenges with.
pub enum PkamKey {
    /// RSA-2048, PKCS#1 v1.5 with SHA-256 (what current clients use).
    Rsa { key: RsaKeyPair, spki_b64: String },
    /// ECDSA P-256 with SHA-256, signature sent as base64 of hex `r‖s`.
    Ecdsa {
        key: EcdsaKeyPair,
        public_hex: String,
    },
}

/// The committed RSA-2048 fixture (PKCS#8 DER) and its base64 SPKI.
const RSA_PKCS8: &[u8] = include_bytes!("../fixtures/pkam-rsa2048.pk8");
const RSA_SPKI_B64: &str = include_str!("../fixtures/pkam-rsa2048.spki.b64");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl PkamKey {
    pub fn rsa() -> Result<PkamKey, String> {
        let key = RsaKeyPair::from_pkcs8(RSA_PKCS8).map_err(|e| format!("RSA fixture: {e}"))?;
        Ok(PkamKey::Rsa {
            key,
            spki_b64: RSA_SPKI_B64.trim().to_string(),
        })
    }

    /// A fresh P-256 key (ring generates EC keys, unlike RSA ones).
    pub fn ecdsa() -> Result<PkamKey, String> {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|e| format!("ECDSA key: {e}"))?;
        let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng)
            .map_err(|e| format!("ECDSA key: {e}"))?;
        let public_hex = hex(key.public_key().as_ref());
        Ok(PkamKey::Ecdsa { key, public_hex })
    }

    /// The value of `privatekey:at_pkam_publickey`.
    pub fn public_key_text(&self) -> &str {
        match self {
            PkamKey::Rsa { spki_b64, .. } => spki_b64,
            PkamKey::Ecdsa { public_hex, .. } => public_hex,
        }
    }

    /// The `pkam:` request for `challenge`.
    pub fn pkam_line(&self, challenge: &str) -> Result<String, ConnError> {
        let rng = SystemRandom::new();
        match self {
            PkamKey::Rsa { key, .. } => {
                let mut sig = vec![0; key.public().modulus_len()];
                key.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    challenge.as_bytes(),
                    &mut sig,
                )
                .map_err(|e| ConnError(format!("RSA sign: {e}")))?;
                Ok(format!(
                    "pkam:signingAlgo:rsa2048:hashingAlgo:sha256:{}",
                    STANDARD.encode(sig)
                ))
            }
            PkamKey::Ecdsa { key, .. } => {
                let sig = key
                    .sign(&rng, challenge.as_bytes())
                    .map_err(|e| ConnError(format!("ECDSA sign: {e}")))?;
                let wire = STANDARD.encode(hex(sig.as_ref()).as_bytes());
                Ok(format!(
                    "pkam:signingAlgo:ecc_secp256r1:hashingAlgo:sha256:{wire}"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_end_at_the_prompt() {
        assert_eq!(find_reply(b"data:1\n@alice@", b"@alice@"), Some((6, 14)));
        assert_eq!(
            find_reply(b"data:1\n@alice@data:2\n@al", b"@alice@"),
            Some((6, 14))
        );
        assert_eq!(find_reply(b"data:1\n@ali", b"@alice@"), None);
        assert_eq!(find_reply(b"data:1", b"@alice@"), None);
        assert_eq!(find_reply(b"data:x\n@data:y\n@", b"@"), Some((6, 8)));
        // An anonymous `@` prompt on an owner connection (exception errors).
        assert_eq!(find_reply(b"error:AT0401\n@x", b"@alice@"), Some((12, 14)));
    }

    #[test]
    fn the_rsa_fixture_loads_and_signs() {
        let key = PkamKey::rsa().expect("fixture");
        let line = key.pkam_line("_s@alice:n").expect("sign");
        assert!(line.starts_with("pkam:signingAlgo:rsa2048:hashingAlgo:sha256:"));
        assert!(key.public_key_text().starts_with("MIIBIjAN"));
    }

    #[test]
    fn ecdsa_keys_sign_double_encoded() {
        let key = PkamKey::ecdsa().expect("key");
        assert_eq!(key.public_key_text().len(), 130);
        let line = key.pkam_line("_s@alice:n").expect("sign");
        let b64 = line.rsplit(':').next().expect("signature");
        let text = STANDARD.decode(b64).expect("base64");
        assert_eq!(text.len(), 128);
    }
}
