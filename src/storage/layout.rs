//! Names of the keyspaces and the byte layout of their keys.
//!
//! - `keys`:    `atsign \0 canonical-key` -> record
//! - `commits`: `atsign \0 commit-id (u64 BE)` -> commit entry; only the
//!   latest entry of each key is kept (`commit_log.rs`)
//! - `commit_index`: `atsign \0 canonical-key` -> the id of that key's one
//!   commit entry (u64 BE), so a write finds the entry it supersedes
//! - `expiry`:  `expires-at-ms (i64 BE, sign-flipped) atsign \0 key` -> empty:
//!   a time-ordered index so purging never scans the whole store
//! - `meta`:    `lastcommit \0 atsign` -> last issued commit id (u64 BE);
//!   `commit_index_built` -> empty, once `commit_index` covers `commits`
//! - `notifications`: `atsign \0 id` -> notification record
//! - `notification_times`: `atsign \0 created-ms (i64 BE, sign-flipped) id`
//!   -> empty: each atSign's notifications in creation order (ties by id),
//!   so "created after T, at most N" reads N entries, not the store
//! - `notification_expiry`: `expires-at-ms (i64 BE, sign-flipped) atsign \0
//!   id` -> empty: the notifications' own time-ordered expiry index (laid
//!   out as `expiry`, kept apart so the key sweep never meets an id)
//!
//! A notification id is `[A-Za-z0-9_-]+`, so it holds no separator, and
//! the fixed-width time in `notification_times` needs none after it.

pub const KEYS: &str = "keys";
pub const COMMITS: &str = "commits";
pub const COMMIT_INDEX: &str = "commit_index";
pub const EXPIRY: &str = "expiry";
pub const META: &str = "meta";
pub const NOTIFICATIONS: &str = "notifications";
pub const NOTIFICATION_TIMES: &str = "notification_times";
pub const NOTIFICATION_EXPIRY: &str = "notification_expiry";

const SEPARATOR: u8 = 0;

/// Bytes of an encoded time or commit id in a key.
const NUMBER_BYTES: usize = 8;

/// Bytes of the record key of `key` (what a read looks up).
pub fn record_key_bytes(atsign: &str, key: &str) -> usize {
    atsign.len() + 1 + key.len()
}

/// Bytes of the longest key a write of `key` may build: its expiry index
/// key (time, atSign, separator, key) is the longest, ahead of the record
/// key; the commit and last-commit keys hold no key name.
pub fn write_key_bytes(atsign: &str, key: &str) -> usize {
    (NUMBER_BYTES + record_key_bytes(atsign, key)).max(tenant_key_bytes(atsign))
}

/// Bytes of the longest key that holds only the atSign: its commit keys
/// (prefix and id) or its last-commit key.
pub fn tenant_key_bytes(atsign: &str) -> usize {
    (atsign.len() + 1 + NUMBER_BYTES).max(LAST_COMMIT_PREFIX.len() + atsign.len())
}

/// What every last-commit key of `meta` starts with.
pub const LAST_COMMIT_PREFIX: &[u8] = b"lastcommit\0";

/// The `meta` key present once `commit_index` has been built for every
/// entry of `commits` (stores written before it existed get it at open).
pub const COMMIT_INDEX_BUILT_KEY: &[u8] = b"commit_index_built";

pub fn tenant_prefix(atsign: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(atsign.len() + 1);
    out.extend_from_slice(atsign.as_bytes());
    out.push(SEPARATOR);
    out
}

pub fn record_key(atsign: &str, key: &str) -> Vec<u8> {
    let mut out = tenant_prefix(atsign);
    out.extend_from_slice(key.as_bytes());
    out
}

thread_local! {
    /// Scratch space for building record keys on the read path.
    static KEY_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with the record key of `(atsign, key)` built in a per-thread
/// buffer, so inline reads allocate nothing for their key.
pub fn with_record_key<R>(atsign: &str, key: &str, f: impl FnOnce(&[u8]) -> R) -> R {
    KEY_SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            buffer.extend_from_slice(atsign.as_bytes());
            buffer.push(SEPARATOR);
            buffer.extend_from_slice(key.as_bytes());
            f(&buffer)
        }
        // Re-entered from inside `f`: fall back to a fresh buffer.
        Err(_) => f(&record_key(atsign, key)),
    })
}

pub fn commit_key(atsign: &str, id: u64) -> Vec<u8> {
    let mut out = tenant_prefix(atsign);
    out.extend_from_slice(&id.to_be_bytes());
    out
}

/// Splits a commit key back into (atsign, id).
pub fn parse_commit_key(bytes: &[u8]) -> Option<(&str, u64)> {
    let split = bytes.len().checked_sub(NUMBER_BYTES + 1)?;
    if bytes.get(split) != Some(&SEPARATOR) {
        return None;
    }
    let atsign = std::str::from_utf8(bytes.get(..split)?).ok()?;
    let id = decode_u64(bytes.get(split + 1..)?)?;
    Some((atsign, id))
}

/// Splits a record (or commit index) key back into (atsign, key).
pub fn parse_record_key(bytes: &[u8]) -> Option<(&str, &str)> {
    let split = bytes.iter().position(|&b| b == SEPARATOR)?;
    let atsign = std::str::from_utf8(bytes.get(..split)?).ok()?;
    let key = std::str::from_utf8(bytes.get(split + 1..)?).ok()?;
    Some((atsign, key))
}

pub fn last_commit_key(atsign: &str) -> Vec<u8> {
    let mut out = LAST_COMMIT_PREFIX.to_vec();
    out.extend_from_slice(atsign.as_bytes());
    out
}

/// Big-endian with the sign bit flipped, so byte order is numeric order.
pub fn encode_time(ms: i64) -> [u8; 8] {
    ((ms as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn decode_time(bytes: &[u8]) -> Option<i64> {
    decode_u64(bytes).map(|v| (v ^ (1 << 63)) as i64)
}

pub fn decode_u64(bytes: &[u8]) -> Option<u64> {
    let array: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(array))
}

pub fn expiry_key(expires_at: i64, atsign: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + atsign.len() + 1 + key.len());
    out.extend_from_slice(&encode_time(expires_at));
    out.extend_from_slice(atsign.as_bytes());
    out.push(SEPARATOR);
    out.extend_from_slice(key.as_bytes());
    out
}

/// Splits an expiry index key back into (expires_at, atsign, key).
pub fn parse_expiry_key(bytes: &[u8]) -> Option<(i64, &str, &str)> {
    let at = decode_time(bytes)?;
    let rest = bytes.get(8..)?;
    let split = rest.iter().position(|&b| b == SEPARATOR)?;
    let atsign = std::str::from_utf8(rest.get(..split)?).ok()?;
    let key = std::str::from_utf8(rest.get(split + 1..)?).ok()?;
    Some((at, atsign, key))
}

/// Bytes of the longest key a notification `id` of `atsign` builds: its
/// creation-time and expiry index keys (a time ahead of the record key).
pub fn notification_key_bytes(atsign: &str, id: &str) -> usize {
    NUMBER_BYTES + record_key_bytes(atsign, id)
}

/// The record key of notification `id`: `atsign \0 id`.
pub fn notification_key(atsign: &str, id: &str) -> Vec<u8> {
    record_key(atsign, id)
}

/// The creation-time index key: `atsign \0 created id`.
pub fn notification_time_key(atsign: &str, created_ms: i64, id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(notification_key_bytes(atsign, id));
    out.extend_from_slice(atsign.as_bytes());
    out.push(SEPARATOR);
    out.extend_from_slice(&encode_time(created_ms));
    out.extend_from_slice(id.as_bytes());
    out
}

/// Splits a creation-time index key back into (atsign, created, id).
pub fn parse_notification_time_key(bytes: &[u8]) -> Option<(&str, i64, &str)> {
    let split = bytes.iter().position(|&b| b == SEPARATOR)?;
    let atsign = std::str::from_utf8(bytes.get(..split)?).ok()?;
    let rest = bytes.get(split + 1..)?;
    let created = decode_time(rest)?;
    let id = std::str::from_utf8(rest.get(NUMBER_BYTES..)?).ok()?;
    Some((atsign, created, id))
}

/// The expiry index key of notification `id`: the layout of `expiry`.
pub fn notification_expiry_key(expires_at: i64, atsign: &str, id: &str) -> Vec<u8> {
    expiry_key(expires_at, atsign, id)
}

/// The first key after every key that starts with `prefix` (`prefix` with
/// its last byte raised, carrying), or `None` when nothing can follow.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if let Some(raised) = last.checked_add(1) {
            end.push(raised);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_keys_parse_back_and_count_their_bytes() {
        let key = notification_time_key("@alice", -3, "id-1_x");
        assert_eq!(
            parse_notification_time_key(&key),
            Some(("@alice", -3, "id-1_x"))
        );
        assert_eq!(key.len(), notification_key_bytes("@alice", "id-1_x"));
        let expiry = notification_expiry_key(9, "@alice", "id-1_x");
        assert_eq!(expiry.len(), notification_key_bytes("@alice", "id-1_x"));
        assert_eq!(parse_expiry_key(&expiry), Some((9, "@alice", "id-1_x")));
        assert_eq!(parse_notification_time_key(b"@alice\0short"), None);
    }

    #[test]
    fn creation_time_keys_sort_by_time_then_id() {
        let mut keys = [
            notification_time_key("@a", 5, "b"),
            notification_time_key("@a", -1, "z"),
            notification_time_key("@a", 5, "a"),
            notification_time_key("@a", 300, "a"),
        ];
        keys.sort();
        let order: Vec<_> = keys
            .iter()
            .filter_map(|k| parse_notification_time_key(k))
            .map(|(_, t, id)| (t, id.to_string()))
            .collect();
        assert_eq!(
            order,
            [
                (-1, "z".into()),
                (5, "a".into()),
                (5, "b".into()),
                (300, "a".into())
            ]
        );
    }

    #[test]
    fn a_prefix_end_follows_every_key_of_the_prefix() {
        assert_eq!(prefix_end(b"@a\0"), Some(b"@a\x01".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        let end = prefix_end(b"@a\0").unwrap_or_default();
        assert!(notification_time_key("@a", i64::MAX, "zzz") < end);
    }

    #[test]
    fn time_keys_sort_numerically_across_the_sign() {
        let mut times = [-5i64, 0, 7, i64::MIN, i64::MAX, 1_700_000_000_000];
        let mut encoded: Vec<_> = times.iter().map(|&t| encode_time(t)).collect();
        encoded.sort();
        times.sort();
        let decoded: Vec<_> = encoded.iter().filter_map(|b| decode_time(b)).collect();
        assert_eq!(decoded, times);
    }

    #[test]
    fn expiry_keys_parse_back() {
        let key = expiry_key(42, "@alice", "phone@alice");
        assert_eq!(parse_expiry_key(&key), Some((42, "@alice", "phone@alice")));
    }

    #[test]
    fn the_counted_key_bytes_are_those_of_the_keys_built() {
        let (atsign, key) = ("@alice", "phone\u{260e}@alice");
        assert_eq!(record_key_bytes(atsign, key), record_key(atsign, key).len());
        let built = [
            record_key(atsign, key).len(),
            expiry_key(i64::MAX, atsign, key).len(),
            commit_key(atsign, 7).len(),
            last_commit_key(atsign).len(),
        ];
        assert_eq!(
            write_key_bytes(atsign, key),
            built.into_iter().max().unwrap_or(0)
        );
        assert_eq!(
            tenant_key_bytes(atsign),
            commit_key(atsign, 7)
                .len()
                .max(last_commit_key(atsign).len())
        );
        // An empty key name still builds the keys of its atSign.
        assert_eq!(write_key_bytes(atsign, ""), last_commit_key(atsign).len());
    }

    #[test]
    fn one_tenant_prefix_is_not_a_prefix_of_another() {
        let alice = tenant_prefix("@al");
        assert!(!record_key("@alice", "x@alice").starts_with(&alice));
    }
}

#[cfg(test)]
mod scratch_tests {
    use super::*;

    #[test]
    fn the_scratch_key_equals_the_allocated_one() {
        let built = with_record_key("@alice", "phone@alice", |k| k.to_vec());
        assert_eq!(built, record_key("@alice", "phone@alice"));
        let nested = with_record_key("@a", "x", |outer| {
            with_record_key("@b", "y", |inner| (outer.to_vec(), inner.to_vec()))
        });
        assert_eq!(nested, (record_key("@a", "x"), record_key("@b", "y")));
    }
}
