//! One shard's way out to other atServers: resolve through the directory,
//! connect with TLS (presenting this server's certificate), prove a local
//! atSign with `pol` when the request needs it, and send one request at a
//! time on a pooled connection ([`super::pool`]).

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_rustls::TlsConnector;
use rustls::pki_types::ServerName;

use super::Dial;
use super::pol::{self, PolError};
use super::pool::{PeerKey, Pool, PoolFull, PoolLimits, Slot};
use crate::client::nonblocking::Client;
use crate::client::{ClientError, Reply};
use crate::clock::Clock;
use crate::error::{AtCode, AtError};
use crate::limits::{
    OUTBOUND_CONNECTIONS_MAX, OUTBOUND_IDLE_CONNECTIONS_MAX, OUTBOUND_IDLE_MS,
    OUTBOUND_IDLE_PER_PEER_MAX, OUTBOUND_POL_STEPS,
};

/// Where an atSign's server is, as the directory says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

/// Why an atSign could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// The directory does not know the atSign (`null`).
    NotFound,
    /// The directory could not be asked (unreachable, timed out, nonsense),
    /// and nothing cached could stand in.
    Unavailable(String),
}

impl ResolveError {
    /// The failure of a request to `atsign`'s server that could not find it.
    pub fn for_atsign(self, atsign: &str) -> RemoteError {
        match self {
            ResolveError::NotFound => RemoteError::NotFound {
                atsign: atsign.to_string(),
            },
            ResolveError::Unavailable(why) => RemoteError::DirectoryUnavailable {
                atsign: atsign.to_string(),
                why,
            },
        }
    }
}

/// Resolution of atSigns to server addresses (the directory client).
pub trait Resolve {
    fn resolve(&self, atsign: &str) -> impl Future<Output = Result<Address, ResolveError>>;
}

/// Why a request to another atServer failed. [`RemoteError::to_at_error`]
/// gives the code a client sees.
#[derive(Debug)]
pub enum RemoteError {
    /// The directory does not know the atSign: AT0007.
    NotFound { atsign: String },
    /// The directory could not be asked: AT0021.
    DirectoryUnavailable { atsign: String, why: String },
    /// Connecting or talking to the remote server failed: AT0021 (AT0023
    /// when it was a deadline).
    Connection { atsign: String, error: ClientError },
    /// The remote server did not accept our `pol`: AT0008.
    Handshake { atsign: String, error: PolError },
    /// This shard has too many outbound connections: AT0006.
    PoolFull { limit: usize },
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteError::NotFound { atsign } => write!(f, "{atsign} is not in the directory"),
            RemoteError::DirectoryUnavailable { atsign, why } => {
                write!(f, "cannot resolve {atsign}: {why}")
            }
            RemoteError::Connection { atsign, error } => write!(f, "{atsign}'s server: {error}"),
            RemoteError::Handshake { atsign, error } => {
                write!(f, "cannot authenticate to {atsign}'s server: {error}")
            }
            RemoteError::PoolFull { limit } => {
                write!(
                    f,
                    "max limit reached on outbound pool ({limit} connections)"
                )
            }
        }
    }
}

impl std::error::Error for RemoteError {}

/// What proving a local atSign takes: its name, a signer of challenge
/// tokens and a way to publish the signed cookie in its own store.
pub trait Prover {
    /// The local atSign, with its `@`.
    fn atsign(&self) -> &str;
    /// RSA-SHA256 signature of `token`, base64.
    fn sign(&self, token: &[u8]) -> Result<String, String>;
    /// Makes `public:<session>@me` = `signature` readable (uncommitted,
    /// with the cookie's short ttl) before it returns.
    fn publish(&self, key: String, signature: String) -> impl Future<Output = Result<(), String>>;
    /// The encryption public key `remote`'s server published
    /// (`public:publickey@remote`), as seen on a new connection, or `None`
    /// when it has none: the prover keeps its copy and notices when the
    /// other atSign was onboarded again (server-to-server.md §5.3).
    fn saw_public_key(&self, remote: &str, key: Option<&str>) -> impl Future<Output = ()>;
}

/// A pooled connection to another atServer.
pub type PeerClient<D, C> = Client<futures_rustls::client::TlsStream<<D as Dial>::Stream>, C>;

/// The outbound side of one shard.
pub struct Outbound<D: Dial, C: Clock, R: Resolve> {
    dial: D,
    clock: C,
    resolver: R,
    connector: TlsConnector,
    pool: RefCell<Pool<PeerClient<D, C>>>,
    /// Deadline of each step (connect, TLS, one request and its reply).
    step: Duration,
}

impl<D: Dial, C: Clock, R: Resolve> Outbound<D, C, R> {
    /// An outbound side whose every step has the deadline `step` (a whole
    /// `pol` twice that, since the verifier calls back in the middle).
    pub fn new(
        dial: D,
        clock: C,
        resolver: R,
        tls: Arc<rustls::ClientConfig>,
        step: Duration,
    ) -> Self {
        Outbound {
            step,
            dial,
            clock,
            resolver,
            connector: TlsConnector::from(tls),
            pool: RefCell::new(Pool::new(PoolLimits {
                open_max: OUTBOUND_CONNECTIONS_MAX,
                idle_max: OUTBOUND_IDLE_CONNECTIONS_MAX,
                idle_per_peer_max: OUTBOUND_IDLE_PER_PEER_MAX,
                idle_for: Duration::from_millis(OUTBOUND_IDLE_MS),
            })),
        }
    }

    pub fn resolver(&self) -> &R {
        &self.resolver
    }

    /// Open outbound connections of this shard (idle and busy).
    pub fn open_connections(&self) -> usize {
        self.pool.borrow().open()
    }

    /// Sends `line` to `remote`'s server on a connection authenticated as
    /// `prover`'s atSign and returns its reply.
    pub async fn request_as<P: Prover>(
        &self,
        prover: &P,
        remote: &str,
        line: &str,
    ) -> Result<Reply, RemoteError> {
        let key = PeerKey {
            local: Some(prover.atsign().to_string()),
            remote: remote.to_string(),
        };
        self.request(key, Some(prover), line).await
    }

    /// Sends `line` to `remote`'s server on an unauthenticated connection.
    pub async fn request_anonymous(&self, remote: &str, line: &str) -> Result<Reply, RemoteError> {
        let key = PeerKey {
            local: None,
            remote: remote.to_string(),
        };
        self.request::<NoProver>(key, None, line).await
    }

    /// Sends `lines` to `remote`'s server in one write on one connection
    /// authenticated as `prover`'s atSign and returns their replies, in
    /// order. The connection is lent to this one exchange; if any reply
    /// fails, the whole exchange fails and the connection is dropped, so
    /// no reply is ever paired with a line it does not answer. Callers
    /// that retry must be able to send every line again (a notification
    /// is: the receiver ingests by id).
    pub async fn request_many_as<P: Prover>(
        &self,
        prover: &P,
        remote: &str,
        lines: &[&str],
    ) -> Result<Vec<Reply>, RemoteError> {
        let key = PeerKey {
            local: Some(prover.atsign().to_string()),
            remote: remote.to_string(),
        };
        self.exchange(key, Some(prover), lines).await
    }

    async fn request<P: Prover>(
        &self,
        key: PeerKey,
        prover: Option<&P>,
        line: &str,
    ) -> Result<Reply, RemoteError> {
        let remote = key.remote.clone();
        self.exchange(key, prover, &[line])
            .await?
            .pop()
            .ok_or(RemoteError::Connection {
                atsign: remote,
                error: ClientError::Closed {
                    during: crate::client::Operation::Receive,
                    pending: Vec::new(),
                },
            })
    }

    async fn exchange<P: Prover>(
        &self,
        key: PeerKey,
        prover: Option<&P>,
        lines: &[&str],
    ) -> Result<Vec<Reply>, RemoteError> {
        let pooled = self.pool.borrow_mut().take(&key, Instant::now());
        let (mut client, slot) = match pooled {
            Some(found) => found,
            None => {
                let slot = self
                    .pool
                    .borrow_mut()
                    .reserve(&key, Instant::now())
                    .map_err(|PoolFull { limit }| RemoteError::PoolFull { limit })?;
                match self.open(&key.remote, prover).await {
                    Ok(client) => (client, slot),
                    Err(error) => {
                        self.pool.borrow_mut().forget(slot);
                        return Err(error);
                    }
                }
            }
        };
        let answered = match lines {
            [line] => client.request(line).await.map(|reply| vec![reply]),
            _ => client.pipeline(lines).await,
        };
        match answered {
            Ok(replies) => {
                self.give_back(slot, client);
                Ok(replies)
            }
            Err(error) => {
                // Whatever the connection still holds (a late reply) must
                // never reach another request: it is dropped, not pooled.
                self.pool.borrow_mut().forget(slot);
                Err(RemoteError::Connection {
                    atsign: key.remote,
                    error,
                })
            }
        }
    }

    fn give_back(&self, slot: Slot, client: PeerClient<D, C>) {
        self.pool
            .borrow_mut()
            .give_back(slot, client, Instant::now());
    }

    /// A new connection to `remote`'s server, greeted and, with a prover,
    /// pol-authenticated.
    async fn open<P: Prover>(
        &self,
        remote: &str,
        prover: Option<&P>,
    ) -> Result<PeerClient<D, C>, RemoteError> {
        let address = self
            .resolver
            .resolve(remote)
            .await
            .map_err(|e| e.for_atsign(remote))?;
        let connection_error = |error| RemoteError::Connection {
            atsign: remote.to_string(),
            error,
        };
        let server_name = ServerName::try_from(address.host.clone()).map_err(|_| {
            connection_error(ClientError::Io {
                during: crate::client::Operation::Connect,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{:?} is not a host name", address.host),
                ),
            })
        })?;
        let step = self.step;
        let connect = || {
            Client::connect(
                self.dial.dial(&address.host, address.port),
                &self.connector,
                server_name.clone(),
                self.clock.clone(),
                step,
            )
        };
        let mut client = connect().await.map_err(connection_error)?;
        if let Some(prover) = prover {
            // Current servers expect `to:@remote` first (it names which of
            // their atSigns the connection is for); an older one answers
            // with an error and carries on, or closes, after which a fresh
            // connection goes straight to `from:`.
            let to_answer = match client.request(&format!("to:{remote}")).await {
                Ok(reply) => Some(reply).filter(|reply| !reply.is_error()),
                Err(ClientError::Closed { .. }) => {
                    client = connect().await.map_err(connection_error)?;
                    None
                }
                Err(error) => return Err(connection_error(error)),
            };
            let public_key = match to_answer {
                Some(reply) => public_key_of_to(&reply),
                // An older peer: the key the reference's own first request
                // asks for, on the same (or the fresh) connection.
                None => {
                    let reply = client
                        .request(&format!("lookup:all:publickey{remote}"))
                        .await
                        .map_err(connection_error)?;
                    public_key_of_lookup_all(&reply)
                }
            };
            prover.saw_public_key(remote, public_key.as_deref()).await;
            self.prove(&mut client, prover, remote).await?;
        }
        Ok(client)
    }

    /// `from` + `pol` as `prover` on a fresh connection to `remote`.
    async fn prove<P: Prover>(
        &self,
        client: &mut PeerClient<D, C>,
        prover: &P,
        remote: &str,
    ) -> Result<(), RemoteError> {
        let sign = |token: &[u8]| prover.sign(token);
        let publish = |key, signature| prover.publish(key, signature);
        let whole = self.step.saturating_mul(OUTBOUND_POL_STEPS);
        let proven = self
            .clock
            .deadline(whole, pol::prove(client, prover.atsign(), sign, publish))
            .await;
        match proven {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(RemoteError::Handshake {
                atsign: remote.to_string(),
                error,
            }),
            Err(_) => Err(RemoteError::Connection {
                atsign: remote.to_string(),
                error: ClientError::Timeout {
                    during: crate::client::Operation::Pol,
                    pending: Vec::new(),
                },
            }),
        }
    }
}

/// The prover type of unauthenticated requests; never called.
enum NoProver {}

impl Prover for NoProver {
    fn atsign(&self) -> &str {
        match *self {}
    }

    fn sign(&self, _token: &[u8]) -> Result<String, String> {
        match *self {}
    }

    async fn publish(&self, _key: String, _signature: String) -> Result<(), String> {
        match *self {}
    }

    async fn saw_public_key(&self, _remote: &str, _key: Option<&str>) {
        match *self {}
    }
}

/// The `data` of the `publickey` object in a `to:` answer
/// (`data:{"publickey":{…,"data":"MII…"},"signing_publickey":…}`).
fn public_key_of_to(reply: &Reply) -> Option<String> {
    let text = std::str::from_utf8(reply.data()?).ok()?;
    let answer = crate::protocol::json::parse(text).ok()?;
    answer
        .get("publickey")?
        .get("data")?
        .as_str()
        .map(str::to_string)
}

/// The `data` of a `lookup:all` answer (`data:{"key":…,"data":"MII…",…}`).
fn public_key_of_lookup_all(reply: &Reply) -> Option<String> {
    let text = std::str::from_utf8(reply.data()?).ok()?;
    let answer = crate::protocol::json::parse(text).ok()?;
    answer.get("data")?.as_str().map(str::to_string)
}

impl RemoteError {
    /// The error a client of this server sees for it.
    pub fn to_at_error(&self) -> AtError {
        match self {
            RemoteError::NotFound { atsign } => AtError::new(
                AtCode::SecondaryNotFound,
                format!("No secondary url found for atsign: {atsign}"),
            ),
            RemoteError::DirectoryUnavailable { .. } => {
                AtError::new(AtCode::SecondaryConnect, self.to_string())
            }
            RemoteError::Connection {
                error: ClientError::Timeout { .. },
                ..
            } => AtError::new(AtCode::Timeout, self.to_string()),
            RemoteError::Connection { .. } => {
                AtError::new(AtCode::SecondaryConnect, self.to_string())
            }
            RemoteError::Handshake { .. } => {
                AtError::new(AtCode::HandshakeFailure, self.to_string())
            }
            RemoteError::PoolFull { .. } => {
                AtError::new(AtCode::OutboundConnectionLimit, self.to_string())
            }
        }
    }
}

/// [`relayed_error`], or AT0021 when the remote error line cannot be read.
pub fn relay(payload: &[u8]) -> AtError {
    relayed_error(payload).unwrap_or_else(|| {
        AtError::new(
            AtCode::SecondaryConnect,
            "the remote atServer's error is unreadable",
        )
    })
}

/// Longest remote error description relayed to a client; the rest is cut.
const RELAYED_DESCRIPTION_CHARS_MAX: usize = 1_024;

/// A remote server's `error:` reply as the error this server relays to its
/// own client: the same code, and the remote description as the message
/// (so an owner sees `key not found : Exception: …`, as from the
/// reference). Legacy `ATxxxx-<description>` and JSON forms are read; a
/// code this server does not know becomes AT0011.
pub fn relayed_error(payload: &[u8]) -> Option<AtError> {
    let text = std::str::from_utf8(payload.strip_prefix(b"error:")?).ok()?;
    let (code, description) = if text.starts_with('{') {
        let json = crate::protocol::json::parse(text).ok()?;
        let code = json.get("errorCode")?.as_str()?.to_string();
        let description = json.get("errorDescription")?.as_str()?.to_string();
        (code, description)
    } else {
        let (code, description) = text.split_once(['-', ':'])?;
        (code.to_string(), description.to_string())
    };
    let description: String = description
        .chars()
        .take(RELAYED_DESCRIPTION_CHARS_MAX)
        .collect();
    let code = AtCode::from_code(&code).unwrap_or(AtCode::InternalServerException);
    // The remote connection's own closing rules do not apply here: the
    // client's connection to us stays open, whatever the remote code.
    let mut error = AtError::new(code, description);
    error.close = false;
    Some(error)
}

impl<D: Dial, C: Clock> Resolve for super::directory::DirectoryClient<D, C> {
    async fn resolve(&self, atsign: &str) -> Result<Address, ResolveError> {
        use super::directory::DirectoryError;
        match super::directory::DirectoryClient::resolve(self, atsign).await {
            Ok(address) => Ok(Address {
                host: address.host().to_string(),
                port: address.port(),
            }),
            Err(DirectoryError::NotFound { .. }) => Err(ResolveError::NotFound),
            Err(other) => Err(ResolveError::Unavailable(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_errors_are_relayed_with_their_code_and_description() {
        let e =
            relayed_error(b"error:AT0015-Exception: @alice:nokey@bob does not exist in keystore")
                .expect("legacy");
        assert_eq!(e.code, AtCode::KeyNotFound);
        assert_eq!(
            e.message,
            "Exception: @alice:nokey@bob does not exist in keystore"
        );
        let j = relayed_error(
            br#"error:{"errorCode":"AT0401","errorDescription":"Exception: Pol Authentication Failed"}"#,
        )
        .expect("json");
        assert_eq!(j.code, AtCode::AuthFailed);
        let closing = relayed_error(b"error:AT0002-disk gone").expect("closing class");
        assert!(!closing.close, "a remote failure never closes our client");
        let unknown = relayed_error(b"error:AT7777-what").expect("unknown code");
        assert_eq!(unknown.code, AtCode::InternalServerException);
        assert!(relayed_error(b"data:x").is_none());
        let long = format!("error:AT0015-{}", "x".repeat(5000));
        let cut = relayed_error(long.as_bytes()).expect("long");
        assert_eq!(cut.message.len(), RELAYED_DESCRIPTION_CHARS_MAX);
    }

    #[test]
    fn the_public_key_is_read_from_a_to_answer_or_a_lookup_all() {
        let to = Reply::from_bytes_for_tests(
            "data:{\"publickey\":{\"key\":\"public:publickey@bob\",\"data\":\"MIIB\",\"metaData\":{}},\"signing_publickey\":null}\n@",
        );
        assert_eq!(public_key_of_to(&to).as_deref(), Some("MIIB"));
        let none =
            Reply::from_bytes_for_tests("data:{\"publickey\":null,\"signing_publickey\":null}\n@");
        assert_eq!(public_key_of_to(&none), None);
        let all = Reply::from_bytes_for_tests(
            "data:{\"key\":\"public:publickey@bob\",\"data\":\"MIIC\",\"metaData\":{}}\n@",
        );
        assert_eq!(public_key_of_lookup_all(&all).as_deref(), Some("MIIC"));
        let missing = Reply::from_bytes_for_tests("error:AT0015-Exception: x\n@");
        assert_eq!(public_key_of_lookup_all(&missing), None);
    }

    #[test]
    fn failures_map_to_the_reference_codes() {
        let code = |e: RemoteError| e.to_at_error().code;
        assert_eq!(
            code(RemoteError::NotFound {
                atsign: "@nobody".into()
            }),
            AtCode::SecondaryNotFound
        );
        assert_eq!(
            code(RemoteError::PoolFull { limit: 1 }),
            AtCode::OutboundConnectionLimit
        );
        assert_eq!(
            code(RemoteError::Connection {
                atsign: "@b".into(),
                error: ClientError::Timeout {
                    during: crate::client::Operation::Receive,
                    pending: Vec::new()
                }
            }),
            AtCode::Timeout
        );
        assert_eq!(
            code(RemoteError::Handshake {
                atsign: "@b".into(),
                error: PolError::SignatureInvalid
            }),
            AtCode::HandshakeFailure
        );
    }
}
