//! What the atDirectory answers, checked: `host:port` or `null`
//! (root.md §2). Everything here is bounded by named limits, because the
//! directory is a peer and its answer becomes a host this server dials and
//! a name it checks certificates against.

use std::fmt;

use rustls::pki_types::ServerName;

use crate::limits::DIRECTORY_HOST_CHARS_MAX;

/// Where an atSign's atServer listens, as the directory named it. The host
/// is a DNS name or an IP address (IPv6 without brackets) of at most
/// [`DIRECTORY_HOST_CHARS_MAX`] characters; the port is never 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerAddress {
    host: String,
    port: u16,
}

impl ServerAddress {
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The name TLS checks the server's certificate against.
    pub fn server_name(&self) -> Result<ServerName<'static>, MalformedAddress> {
        ServerName::try_from(self.host.clone()).map_err(|_| MalformedAddress::Host)
    }
}

impl fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a `host:port` text is not an address this server will dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedAddress {
    /// No `:` separating a host from a port.
    NoPort,
    /// The port is not a number from 1 to 65535.
    Port,
    /// The host is empty, or neither a DNS name nor an IP address.
    Host,
    /// The host is longer than [`DIRECTORY_HOST_CHARS_MAX`].
    HostTooLong,
}

impl fmt::Display for MalformedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MalformedAddress::NoPort => f.write_str("no :port"),
            MalformedAddress::Port => f.write_str("the port is not a number from 1 to 65535"),
            MalformedAddress::Host => f.write_str("the host is not a DNS name or IP address"),
            MalformedAddress::HostTooLong => write!(
                f,
                "the host is longer than {DIRECTORY_HOST_CHARS_MAX} characters"
            ),
        }
    }
}

impl std::error::Error for MalformedAddress {}

/// Parses `host:port` (`[v6]:port` for an IPv6 address): the form of a
/// directory answer and of `--root`.
pub fn parse_address(text: &str) -> Result<ServerAddress, MalformedAddress> {
    let (host, port) = text.rsplit_once(':').ok_or(MalformedAddress::NoPort)?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or(MalformedAddress::Port)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.len() > DIRECTORY_HOST_CHARS_MAX {
        return Err(MalformedAddress::HostTooLong);
    }
    if host.is_empty() || ServerName::try_from(host).is_err() {
        return Err(MalformedAddress::Host);
    }
    Ok(ServerAddress {
        host: host.to_string(),
        port,
    })
}

/// What the directory said about one atSign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Found(ServerAddress),
    /// `null`: the directory knows no such atSign.
    NotFound,
}

/// Why a directory reply could not be read as an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MalformedAnswer {
    NotText,
    Address(MalformedAddress),
}

impl fmt::Display for MalformedAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MalformedAnswer::NotText => f.write_str("the answer is not UTF-8 text"),
            MalformedAnswer::Address(e) => write!(f, "the answer is not host:port: {e}"),
        }
    }
}

/// Reads the payload of a directory reply (the text before `\n@`, which
/// still ends in the `\r` of the directory's CRLF). Surrounding whitespace
/// is ignored; `null` means not found, as in every client the reference
/// ships.
pub fn parse_answer(payload: &[u8]) -> Result<Answer, MalformedAnswer> {
    let text = std::str::from_utf8(payload).map_err(|_| MalformedAnswer::NotText)?;
    let text = text.trim();
    if text == "null" {
        return Ok(Answer::NotFound);
    }
    parse_address(text)
        .map(Answer::Found)
        .map_err(MalformedAnswer::Address)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(host: &str, port: u16) -> Result<Answer, MalformedAnswer> {
        Ok(Answer::Found(ServerAddress {
            host: host.into(),
            port,
        }))
    }

    #[test]
    fn answers_are_host_port_or_null_with_the_directorys_crlf() {
        assert_eq!(
            parse_answer(b"vip.ve.atsign.zone:25000\r"),
            found("vip.ve.atsign.zone", 25000)
        );
        assert_eq!(parse_answer(b"127.0.0.1:6464"), found("127.0.0.1", 6464));
        assert_eq!(parse_answer(b"[::1]:6464\r"), found("::1", 6464));
        assert_eq!(parse_answer(b"null\r"), Ok(Answer::NotFound));
        assert_eq!(parse_answer(b" null "), Ok(Answer::NotFound));
    }

    #[test]
    fn hostile_answers_are_refused_with_their_reason() {
        let refused = |payload: &[u8]| parse_answer(payload).unwrap_err();
        let address = |e| MalformedAnswer::Address(e);
        assert_eq!(refused(b"garbage"), address(MalformedAddress::NoPort));
        assert_eq!(refused(b"host:0"), address(MalformedAddress::Port));
        assert_eq!(refused(b"host:65536"), address(MalformedAddress::Port));
        assert_eq!(refused(b"host:-1"), address(MalformedAddress::Port));
        assert_eq!(refused(b":6464"), address(MalformedAddress::Host));
        assert_eq!(refused(b"a b:6464"), address(MalformedAddress::Host));
        assert_eq!(refused(b"nul\0l:6464"), address(MalformedAddress::Host));
        let long = format!("{}:6464", "a".repeat(DIRECTORY_HOST_CHARS_MAX + 1));
        assert_eq!(
            refused(long.as_bytes()),
            address(MalformedAddress::HostTooLong)
        );
        assert_eq!(refused(b"\xff:1"), MalformedAnswer::NotText);
    }

    #[test]
    fn addresses_print_as_they_parse() {
        for text in ["localhost:6464", "[::1]:64", "10.0.0.1:1"] {
            assert_eq!(parse_address(text).expect("valid").to_string(), text);
        }
    }
}
