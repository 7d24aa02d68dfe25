//! Replies of one connection that are not written yet, in request order.
//!
//! Pipelined writes are handed to the storage actor without waiting, so the
//! ones a client sends back to back share a batch (and one fsync). Their
//! replies, and those of reads that ran meanwhile, wait here until the
//! pipeline ([`super::pipeline`]) emits them in request order. Anything
//! whose answer could depend on an in-flight write (a read of the same key,
//! `scan`, `stats`, auth…) flushes first.

use std::collections::VecDeque;

use crate::storage::PendingWrite;
use crate::verbs::FollowUp;

pub(super) enum Slot {
    /// A reply computed already, to be written after the slots before it.
    Ready(Vec<u8>),
    /// A write whose commit id (or error) is the reply; `bytes` is the
    /// size of its request line.
    Write {
        key: String,
        /// The second key the same write changes atomically (the CRAM
        /// secret's tombstone), so reads of it wait too.
        companion_key: Option<String>,
        bytes: usize,
        pending: PendingWrite,
        /// What follows the write once it is durable.
        follow_up: Option<Box<FollowUp>>,
        /// What its reply says once it is durable.
        reply: WriteReply,
    },
}

/// The reply of a durable write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum WriteReply {
    /// `data:<commit id>` (or `data:-1`): an owner's write.
    CommitId,
    /// `data:<text>`: `success` for a notification another atServer
    /// delivered, the id of an owner's notification.
    Text(String),
}

#[derive(Default)]
pub struct InFlight {
    slots: VecDeque<Slot>,
    /// Bytes held in `Ready` slots.
    ready_bytes: usize,
    /// Request bytes of the `Write` slots.
    write_bytes: usize,
}

impl InFlight {
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Bytes of computed replies waiting behind in-flight writes.
    pub fn ready_bytes(&self) -> usize {
        self.ready_bytes
    }

    /// Request bytes of the writes in flight.
    pub fn write_bytes(&self) -> usize {
        self.write_bytes
    }

    pub(super) fn push_ready(&mut self, reply: Vec<u8>) {
        debug_assert_eq!(self.ready_bytes, self.counted_ready_bytes());
        self.ready_bytes += reply.len();
        self.slots.push_back(Slot::Ready(reply));
        debug_assert_eq!(self.ready_bytes, self.counted_ready_bytes());
    }

    pub(super) fn push_write(
        &mut self,
        key: String,
        companion_key: Option<String>,
        bytes: usize,
        pending: PendingWrite,
        follow_up: Option<Box<FollowUp>>,
        reply: WriteReply,
    ) {
        debug_assert_eq!(self.write_bytes, self.counted_write_bytes());
        self.write_bytes += bytes;
        self.slots.push_back(Slot::Write {
            key,
            companion_key,
            bytes,
            pending,
            follow_up,
            reply,
        });
        debug_assert_eq!(self.write_bytes, self.counted_write_bytes());
    }

    pub(super) fn front_mut(&mut self) -> Option<&mut Slot> {
        self.slots.front_mut()
    }

    pub(super) fn pop_front(&mut self) -> Option<Slot> {
        debug_assert_eq!(self.ready_bytes, self.counted_ready_bytes());
        debug_assert_eq!(self.write_bytes, self.counted_write_bytes());
        let slot = self.slots.pop_front();
        match &slot {
            Some(Slot::Ready(bytes)) => {
                self.ready_bytes = self.ready_bytes.saturating_sub(bytes.len());
            }
            Some(Slot::Write { bytes, .. }) => {
                self.write_bytes = self.write_bytes.saturating_sub(*bytes);
            }
            None => {}
        }
        debug_assert_eq!(self.ready_bytes, self.counted_ready_bytes());
        debug_assert_eq!(self.write_bytes, self.counted_write_bytes());
        slot
    }

    pub(super) fn clear(&mut self) {
        self.slots.clear();
        self.ready_bytes = 0;
        self.write_bytes = 0;
    }

    /// Whether a write to `key` is still in flight.
    pub(super) fn touches(&self, key: &str) -> bool {
        self.slots.iter().any(|slot| match slot {
            Slot::Write {
                key: k,
                companion_key,
                ..
            } => k == key || companion_key.as_deref() == Some(key),
            Slot::Ready(_) => false,
        })
    }

    /// Resolves once the oldest write in the queue is durable (at once when
    /// the oldest slot is a ready reply).
    pub async fn wait_front(&mut self) {
        match self.slots.front_mut() {
            Some(Slot::Write { pending, .. }) => pending.ready().await,
            Some(Slot::Ready(_)) | None => {}
        }
    }

    /// The write bytes recounted from the slots, for the assertions that
    /// pair with every change of `write_bytes` (debug builds only walk it).
    fn counted_write_bytes(&self) -> usize {
        if cfg!(debug_assertions) {
            self.slots
                .iter()
                .map(|slot| match slot {
                    Slot::Write { bytes, .. } => *bytes,
                    _ => 0,
                })
                .sum()
        } else {
            self.write_bytes
        }
    }

    /// The ready bytes recounted from the slots, for the assertions that
    /// pair with every change of `ready_bytes` (debug builds only walk it).
    fn counted_ready_bytes(&self) -> usize {
        if cfg!(debug_assertions) {
            self.slots
                .iter()
                .map(|slot| match slot {
                    Slot::Ready(bytes) => bytes.len(),
                    _ => 0,
                })
                .sum()
        } else {
            self.ready_bytes
        }
    }
}
