//! Outbound TCP for the shards: the [`Dial`] the server's outbound side
//! (the atDirectory client, connections to other atServers) runs on.
//!
//! glommio connects through io_uring, but name resolution (`getaddrinfo`)
//! is a blocking call: it runs on the shard's blocking thread
//! (`spawn_blocking`), so a slow DNS server never stalls the shard's other
//! connections. IP literals skip resolution. Each resolved address is tried
//! in turn; the caller puts one deadline on the whole dial.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use glommio::net::TcpStream;

use crate::limits::DIAL_ADDRESSES_MAX;
use crate::remote::Dial;

/// Dials from the calling shard with glommio's `TcpStream` (TCP_NODELAY on:
/// a handshake's small writes must not wait for Nagle). Must be used on a
/// shard thread; it holds nothing, so every shard can have a copy.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShardDialer;

impl ShardDialer {
    /// The addresses `host` names, without blocking the shard: an IP literal
    /// (bracketed IPv6 too) directly, a name through the shard's blocking
    /// thread. At most [`DIAL_ADDRESSES_MAX`] are kept.
    pub async fn resolve(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let name = host.to_string();
        let resolved = glommio::executor()
            .spawn_blocking(move || {
                (name.as_str(), port)
                    .to_socket_addrs()
                    .map(|found| found.take(DIAL_ADDRESSES_MAX).collect::<Vec<_>>())
            })
            .await?;
        if resolved.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{host} has no address"),
            ));
        }
        Ok(resolved)
    }
}

impl Dial for ShardDialer {
    type Stream = TcpStream;

    async fn dial(&self, host: &str, port: u16) -> std::io::Result<TcpStream> {
        let mut last_error = None;
        for address in ShardDialer::resolve(host, port).await? {
            match TcpStream::connect(address).await {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return Ok(stream);
                }
                Err(error) => last_error = Some(std::io::Error::from(error)),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{host} has no address"),
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    use futures_lite::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::clock::Clock;
    use crate::shard::ShardClock;
    use crate::shard::tests::on_a_shard;

    /// A loopback listener that echoes one read back, on a std thread.
    fn echo_once() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            for _ in 0..2 {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                let mut buf = [0u8; 64];
                if let Ok(n) = stream.read(&mut buf) {
                    let _ = stream.write_all(&buf[..n]);
                }
            }
        });
        address
    }

    #[test]
    fn the_shard_dialer_reaches_a_loopback_listener_by_ip_and_by_name() {
        let address = echo_once();
        let echoed = on_a_shard(move || async move {
            let mut replies = Vec::new();
            for host in ["127.0.0.1", "localhost"] {
                let dial = ShardDialer.dial(host, address.port());
                let mut stream = ShardClock
                    .deadline(Duration::from_secs(10), dial)
                    .await
                    .expect("in time")
                    .expect("connected");
                assert!(stream.nodelay().expect("nodelay"), "TCP_NODELAY is on");
                stream.write_all(b"ping").await.expect("write");
                let mut reply = [0u8; 4];
                let read = stream.read_exact(&mut reply);
                ShardClock
                    .deadline(Duration::from_secs(10), read)
                    .await
                    .expect("in time")
                    .expect("read");
                replies.push(reply);
            }
            replies
        });
        assert_eq!(echoed, [*b"ping", *b"ping"]);
    }

    #[test]
    fn ip_literals_resolve_without_a_lookup_and_refused_ports_fail() {
        let outcome = on_a_shard(|| async {
            let v6 = ShardDialer::resolve("[::1]", 7).await.expect("literal");
            assert_eq!(v6, ["[::1]:7".parse::<SocketAddr>().expect("addr")]);
            // A port nothing listens on: bind one, then free it.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("port")
                .port();
            let dial = ShardDialer.dial("127.0.0.1", port);
            ShardClock
                .deadline(Duration::from_secs(10), dial)
                .await
                .expect("in time")
                .map(|_| ())
        });
        assert!(outcome.is_err(), "{outcome:?}");
    }
}
