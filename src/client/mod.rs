//! The client side of the protocol, written once for tests, tools and the
//! server's own outbound connections.
//!
//! - [`framing`]: where the next server frame ends in buffered bytes
//!   (`<payload>\n<prompt>`, a bare prompt, a pushed notification), with no
//!   I/O and no allocation, so an event loop can use it on its hot path;
//! - [`auth`]: the `from:`/`cram:`/`pkam:` lines, with the server's own cram
//!   digest and a [`auth::PkamKey`] that signs challenges the way the
//!   verifier in [`crate::auth::pkam`] checks them;
//! - [`blocking`]: a std `TcpStream` + rustls client where every socket call
//!   has a timeout;
//! - [`nonblocking`]: the same operations over any `futures_io` stream, with
//!   a [`crate::clock::Clock`] deadline on every network await, so it runs on
//!   glommio without naming it;
//! - the client-side rustls configuration is [`crate::tls::client_config`]
//!   (ring, TLS 1.2 and 1.3, optionally a client certificate for
//!   server-to-server connections);
//! - [`ClientError`]: one typed error for both clients.
//!
//! Both clients read replies in order, so pipelined requests are answered
//! one by one; monitor notifications are recognised by the framing but not
//! yet delivered by the clients (they report them as unexpected).

pub mod auth;
pub mod blocking;
mod error;
pub mod framing;
mod inbox;
pub mod nonblocking;

pub use error::{ClientError, Operation};
pub use framing::{Frame, ReplyFramer};
pub use inbox::{MonitorFrame, Reply};

use std::time::Duration;

/// Default bound on every socket operation and on each reply. A reply of the
/// largest value the server stores (10 MB) arrives well within it on any
/// link a test or tool runs over; a dead peer is noticed within it.
pub const TIMEOUT_DEFAULT: Duration = Duration::from_millis(crate::limits::CLIENT_TIMEOUT_MS);
