//! `sync:from:<id|-1>[:limit:<n>][:skipDeletesUntil:<k>][:<regex>]`: a
//! page of the owner's commit log after `<id>`, each entry with the key's
//! current value and metadata (sync.md §3, changes §3).
//!
//! The log keeps one entry per key, the latest, so a client syncing from
//! -1 receives every key's current state once. An entry that cannot be
//! served (a corrupt entry, a key that does not parse, a record that is
//! gone or unreadable) is skipped and logged, never failing the page: one
//! orphan entry must not stop every device's sync at the same place.

use super::Reply;
use super::metadata::write_meta_json_as_strings;
use crate::connection::Owner;
use crate::error::AtError;
use crate::limits::{SYNC_PAGE_BYTES_MAX, SYNC_PAGE_ENTRIES_MAX};
use crate::protocol::atkey::{self, KeyType};
use crate::protocol::command::SyncFrom;
use crate::protocol::json::ObjectWriter;
use crate::storage::{CommitEntry, CommitOp, StoredRecord, TenantStore};

pub fn apply(owner: &Owner, cmd: SyncFrom<'_>, payload: &mut String) -> Result<Reply, AtError> {
    let filter = SyncFilter::new(cmd.regex)?.for_owner(owner);
    let store = &owner.tenant().store;
    // Ids above -1 only: `from` is -1 or a commit id the client received.
    let first = u64::try_from(cmd.from.saturating_add(1)).unwrap_or(0);
    let entries_max = page_entries(cmd.limit);
    let skip_deletes_until = cmd.skip_deletes_until.unwrap_or(-1);
    // A delete at or below `skipDeletesUntil` is left out unless it is the
    // newest entry of the log, so the client's loop still reaches the end.
    let newest = if skip_deletes_until >= 0 {
        store.newest_commit_entry_id()?
    } else {
        None
    };
    let now = super::now_ms();
    let mut page = Page::new(payload, entries_max);
    for item in store.commit_log(first)? {
        let (id, entry) = item?;
        if !filter.syncs(&entry.key) {
            continue;
        }
        if entry.op == CommitOp::Delete
            && i64::try_from(id).is_ok_and(|id| id <= skip_deletes_until)
            && newest != Some(id)
        {
            continue;
        }
        let Some(record) = servable(store, id, &entry, now) else {
            continue;
        };
        if !page.push(id, &entry, record.as_ref()) {
            break;
        }
    }
    page.finish();
    Ok(Reply::Data)
}

/// Entries of one page: the client's `limit`, within
/// [`SYNC_PAGE_ENTRIES_MAX`]; a `limit:0` still gets one entry, so a
/// client looping on pages always advances.
fn page_entries(limit: Option<u32>) -> usize {
    limit
        .map_or(SYNC_PAGE_ENTRIES_MAX, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        })
        .clamp(1, SYNC_PAGE_ENTRIES_MAX)
}

/// What `entry` is served with: `Some(None)` for a delete, `Some(record)`
/// for a key that still exists, `None` for an entry to skip (logged).
fn servable(
    store: &TenantStore,
    id: u64,
    entry: &CommitEntry,
    now: i64,
) -> Option<Option<StoredRecord>> {
    if atkey::key_type(&entry.key, None) == KeyType::Invalid {
        tracing::warn!(id, key = %entry.key, "sync: commit entry of a key that does not parse, skipped");
        return None;
    }
    if entry.op == CommitOp::Delete {
        return Some(None);
    }
    match store.get(&entry.key) {
        // Expired but not purged yet: its purge is logged as a delete.
        Ok(Some(record)) if record.meta.expires_at.is_none_or(|at| at > now) => Some(Some(record)),
        Ok(_) => {
            tracing::debug!(id, key = %entry.key, "sync: commit entry of a key that is gone, skipped");
            None
        }
        Err(error) => {
            tracing::warn!(id, key = %entry.key, %error, "sync: unreadable record, entry skipped");
            None
        }
    }
}

/// Which keys a sync (or `stats:3`) covers: those matching the client's
/// regex, and always those a client needs whatever it syncs (sync.md §2);
/// `__manage` keys never; for an APKAM connection only keys without a
/// namespace or of a namespace its enrollment holds (or all with `*` or
/// `__manage`, auth.md §6.4).
pub struct SyncFilter {
    regex: Option<regex::Regex>,
    enrolled: Option<std::sync::Arc<crate::connection::Enrolled>>,
}

impl SyncFilter {
    pub fn new(regex: Option<&str>) -> Result<SyncFilter, AtError> {
        let regex = match regex {
            Some(text) => Some(super::pattern::compile(text)?),
            None => None,
        };
        Ok(SyncFilter {
            regex,
            enrolled: None,
        })
    }

    /// Limited to what `owner`'s enrollment holds, if it has one.
    pub fn for_owner(mut self, owner: &Owner) -> SyncFilter {
        self.enrolled = owner.enrollment().cloned();
        self
    }

    pub fn syncs(&self, key: &str) -> bool {
        if is_manage(key) {
            return false;
        }
        if let Some(enrolled) = &self.enrolled
            && !enrolled.namespaces.syncs(key)
        {
            return false;
        }
        match &self.regex {
            None => true,
            Some(regex) => regex.is_match(key) || always_synced(key),
        }
    }
}

/// Keys every sync carries, regex or not: shared keys, the public
/// encryption key, and public keys without a namespace.
fn always_synced(key: &str) -> bool {
    if key.contains("shared_key") || key.starts_with("public:publickey") {
        return true;
    }
    key.strip_prefix("public:").is_some_and(|rest| {
        let name = rest.rsplit_once('@').map_or(rest, |(name, _)| name);
        !name.contains('.')
    })
}

/// A key of the `__manage` namespace (enrollment bookkeeping).
fn is_manage(key: &str) -> bool {
    atkey::namespace(key) == Some("__manage")
}

/// The JSON array being built, within its entry and byte bounds.
struct Page<'p> {
    out: &'p mut String,
    entries: usize,
    entries_max: usize,
    start: usize,
}

impl<'p> Page<'p> {
    fn new(out: &'p mut String, entries_max: usize) -> Page<'p> {
        out.push('[');
        let start = out.len();
        Page {
            out,
            entries: 0,
            entries_max,
            start,
        }
    }

    /// Adds one entry; false once the page is full (by entries, or by
    /// bytes: the entry that crosses [`SYNC_PAGE_BYTES_MAX`] is the last,
    /// and the first entry is always taken, however large).
    fn push(&mut self, id: u64, entry: &CommitEntry, record: Option<&StoredRecord>) -> bool {
        if self.entries > 0 {
            self.out.push(',');
        }
        write_entry(self.out, id, entry, record);
        self.entries += 1;
        let bytes = self.out.len() - self.start;
        self.entries < self.entries_max && bytes <= SYNC_PAGE_BYTES_MAX
    }

    fn finish(self) {
        self.out.push(']');
    }
}

/// `{"atKey":…,"value":…,"metadata":{…},"commitId":n,"operation":"*"}`;
/// a delete has `"value":null,"metadata":null`.
fn write_entry(out: &mut String, id: u64, entry: &CommitEntry, record: Option<&StoredRecord>) {
    let mut obj = ObjectWriter::new(out);
    obj.field_str("atKey", &entry.key);
    match record.and_then(|r| r.value.as_deref()) {
        Some(value) => obj.field_str("value", value),
        None => obj.field_raw("value", "null"),
    };
    match record {
        Some(record) => {
            let mut meta = String::new();
            write_meta_json_as_strings(&mut meta, &record.meta);
            obj.field_raw("metadata", &meta)
        }
        None => obj.field_raw("metadata", "null"),
    };
    obj.field_raw("commitId", &id.to_string());
    obj.field_str("operation", entry.op.symbol());
    obj.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_and_public_encryption_keys_sync_whatever_the_regex() {
        let filter = SyncFilter::new(Some(r"\.wavi")).unwrap();
        assert!(filter.syncs("phone.wavi@alice"));
        assert!(!filter.syncs("phone.other@alice"));
        assert!(filter.syncs("@bob:shared_key@alice"));
        assert!(filter.syncs("shared_key.bob@alice"));
        assert!(filter.syncs("public:publickey@alice"));
        assert!(filter.syncs("public:signing_publickey@alice"));
        assert!(!filter.syncs("public:location.other@alice"));
    }

    #[test]
    fn manage_keys_never_sync() {
        for filter in [
            SyncFilter::new(None).unwrap(),
            SyncFilter::new(Some(".*")).unwrap(),
        ] {
            assert!(!filter.syncs("abc.default_enc_private_key.__manage@alice"));
            assert!(filter.syncs("abc.default.wavi@alice"));
        }
    }

    #[test]
    fn a_page_holds_the_clients_limit_within_the_servers_bound() {
        assert_eq!(page_entries(None), SYNC_PAGE_ENTRIES_MAX);
        assert_eq!(page_entries(Some(10)), 10);
        assert_eq!(page_entries(Some(0)), 1);
        assert_eq!(page_entries(Some(u32::MAX)), SYNC_PAGE_ENTRIES_MAX);
    }

    #[test]
    fn an_orphan_a_corrupt_and_an_unparsable_entry_are_skipped_not_fatal() {
        use crate::storage::Mutation;
        use futures_lite::future::block_on;
        let tenant = crate::context::testing::tenant("@sync-orphans");
        let store = &tenant.store;
        let put = |key: &str, commit: bool| {
            let record = StoredRecord::written_by(Some("v".into()), "@sync-orphans", 1);
            let put = move |_| Ok(Mutation::Put(Box::new(record), CommitOp::UpdateAll));
            block_on(store.write(key.to_string(), commit, put)).expect("written")
        };
        put("kept.app@sync-orphans", true);
        // Logged, then deleted without a log entry: an orphan entry.
        put("orphan.app@sync-orphans", true);
        block_on(store.write("orphan.app@sync-orphans".into(), false, |_| {
            Ok(Mutation::Delete)
        }))
        .expect("deleted");
        put("no owner", true);
        put("last.app@sync-orphans", true);
        store.plant_commit_entry(1_000, b"not an entry");
        let crate::connection::Caller::Owner(owner) = super::super::testing::owner_of(&tenant)
        else {
            panic!("an owner");
        };
        let sync = SyncFrom {
            from: -1,
            limit: Some(10),
            skip_deletes_until: None,
            regex: None,
        };
        let mut payload = String::new();
        apply(&owner, sync, &mut payload).expect("the page is served");
        let page = crate::protocol::json::parse(&payload).expect("JSON");
        let crate::protocol::json::JsonValue::Array(items) = page else {
            panic!("an array");
        };
        let keys: Vec<&str> = items
            .iter()
            .filter_map(|e| e.get("atKey").and_then(|k| k.as_str()))
            .collect();
        assert_eq!(keys, ["kept.app@sync-orphans", "last.app@sync-orphans"]);
    }

    #[test]
    fn entries_render_as_the_reference_does() {
        let mut out = String::new();
        let delete = CommitEntry {
            key: "k1.wavi@alice".into(),
            op: CommitOp::Delete,
            op_time_ms: 0,
        };
        write_entry(&mut out, 7, &delete, None);
        assert_eq!(
            out,
            r#"{"atKey":"k1.wavi@alice","value":null,"metadata":null,"commitId":7,"operation":"-"}"#
        );
    }
}
