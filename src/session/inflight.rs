//! Replies of one connection that are not written yet, in request order.
//!
//! Pipelined writes are handed to the storage actor without waiting, so the
//! ones a client sends back to back share a batch (and one fsync). Their
//! replies, and those of reads that ran meanwhile, wait here until
//! [`Session::flush`](super::Session::flush) emits them in request order.
//! Anything whose answer could depend on an in-flight write (a read of the
//! same key, `scan`, `stats`, auth…) flushes first.

use std::collections::VecDeque;

use crate::storage::PendingWrite;

pub(super) enum Slot {
    /// A reply computed already, to be written after the slots before it.
    Ready(Vec<u8>),
    /// A write whose commit id (or error) is the reply.
    Write(PendingWrite),
    /// A write whose result is not reported (a follow-up write).
    Silent(PendingWrite),
}

#[derive(Default)]
pub struct InFlight {
    pub(super) slots: VecDeque<Slot>,
    /// Keys of the writes in flight (few: one read's worth of requests).
    pub(super) keys: Vec<String>,
}

impl InFlight {
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub(super) fn touches(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }
}
