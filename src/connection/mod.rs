//! One connection's state, with no I/O: who the other end has proven to be,
//! its outstanding challenge, the reply style it asked for, its counters.
//!
//! A leaf below `verbs`: a verb changes the state only through its methods
//! (issue a challenge, authenticate, fail an attempt), and learns who is
//! calling only from a [`Caller`], the typed proof the gate hands it. Nothing
//! here owns a socket, so every verb can be tested without one.

mod caller;
mod state;

pub use caller::{Anonymous, AuthMethod, Caller, CallerKind, Enrolled, Owner, Peer};
pub use state::{ConnectionState, PolChallenge};
