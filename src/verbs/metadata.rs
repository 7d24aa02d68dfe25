//! Metadata on the owner's write path: the owned form of a command's metadata
//! fragment, the reference's merge rules, and the JSON renderings.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{AtCode, AtError};
use crate::limits::{TIME_TO_LIVE_MS_MAX, TIME_TO_REFRESH_SECS_MAX};
use crate::protocol::json::{self, ObjectWriter};
use crate::protocol::metadata::MetaFragment;
use crate::protocol::time::{format_dart_utc, parse_iso_utc};
use crate::storage::{StoredMeta, StoredRecord};

/// A string field of a write: absent (keep the old value), the literal
/// `null` (clear it) or a new value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Keep,
    Clear,
    Set(String),
}

impl Field {
    fn from(token: Option<&str>) -> Field {
        match token {
            None => Field::Keep,
            Some(t) if t.eq_ignore_ascii_case("null") => Field::Clear,
            Some(t) => Field::Set(t.to_string()),
        }
    }

    fn apply(self, old: Option<String>) -> Option<String> {
        match self {
            Field::Keep => old,
            Field::Clear => None,
            Field::Set(v) => Some(v),
        }
    }
}

/// The owned, validated metadata of one `update`/`update:meta`, ready to be
/// moved onto the storage actor.
#[derive(Debug, Clone)]
pub struct MetaUpdate {
    pub ttl: Option<i64>,
    pub ttb: Option<i64>,
    pub ttr: Option<i64>,
    pub ccd: Option<bool>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub available_at: Option<i64>,
    pub is_binary: bool,
    pub is_encrypted: bool,
    pub immutable: Option<bool>,
    pub data_signature: Field,
    pub shared_key_enc: Field,
    pub pub_key_cs: Field,
    pub pub_key_hash: Field,
    pub hashing_algo: Field,
    pub encoding: Field,
    pub enc_key_name: Field,
    pub enc_algo: Field,
    pub iv_nonce: Field,
    pub ske_enc_key_name: Field,
    pub ske_enc_algo: Field,
    pub app_metadata: Field,
}

fn syntax(message: &str) -> AtError {
    AtError::new(AtCode::InvalidSyntax, message)
}

fn timestamp(token: Option<&str>, name: &str) -> Result<Option<i64>, AtError> {
    match token {
        None => Ok(None),
        Some(t) => parse_iso_utc(t)
            .map(Some)
            .ok_or_else(|| syntax(&format!("{name} must be an ISO-8601 UTC timestamp"))),
    }
}

impl MetaUpdate {
    /// Validates the fragment (the reference's ttl/ttb/ttr rules) and copies it.
    pub fn from_fragment(f: &MetaFragment<'_>) -> Result<MetaUpdate, AtError> {
        if f.ttl.is_some_and(|v| v < 0) {
            return Err(syntax(
                "Valid value for TTL should be greater than or equal to 0",
            ));
        }
        if f.ttb.is_some_and(|v| v < 0) {
            return Err(syntax(
                "Valid value for TTB should be greater than or equal to 0",
            ));
        }
        if f.ttr.is_some_and(|v| v <= -2) {
            return Err(syntax(
                "Valid values for TTR are -1 and greater than or equal to 1",
            ));
        }
        for (name, value) in [("TTL", f.ttl), ("TTB", f.ttb)] {
            if value.is_some_and(|v| v > TIME_TO_LIVE_MS_MAX) {
                return Err(syntax(&format!(
                    "Valid value for {name} should be at most {TIME_TO_LIVE_MS_MAX} ms (a century)"
                )));
            }
        }
        if f.ttr.is_some_and(|v| v > TIME_TO_REFRESH_SECS_MAX) {
            return Err(syntax(&format!(
                "Valid value for TTR should be at most {TIME_TO_REFRESH_SECS_MAX} s (a century)"
            )));
        }
        if let Some(app) = f.app_metadata.filter(|t| !t.eq_ignore_ascii_case("null")) {
            let decoded = STANDARD
                .decode(app)
                .map_err(|_| syntax("appMetadata must be base64"))?;
            let text = String::from_utf8(decoded)
                .map_err(|_| syntax("appMetadata must be base64 of JSON"))?;
            match json::parse(&text) {
                Ok(json::JsonValue::Object(_)) => {}
                _ => return Err(syntax("appMetadata must be base64 of a JSON object")),
            }
        }
        Ok(MetaUpdate {
            ttl: f.ttl,
            ttb: f.ttb,
            // ttr 0 means "not set" in the reference.
            ttr: f.ttr.filter(|&v| v != 0),
            ccd: f.ccd,
            created_at: timestamp(f.c_at, "cAt")?,
            updated_at: timestamp(f.u_at, "uAt")?,
            expires_at: timestamp(f.e_at, "eAt")?,
            available_at: timestamp(f.a_at, "aAt")?,
            is_binary: f.is_binary.unwrap_or(false),
            is_encrypted: f.is_encrypted.unwrap_or(false),
            immutable: f.immutable,
            data_signature: Field::from(f.data_signature),
            shared_key_enc: Field::from(f.shared_key_enc),
            pub_key_cs: Field::from(f.pub_key_cs),
            pub_key_hash: Field::from(f.pub_key_hash),
            hashing_algo: Field::from(f.hashing_algo),
            encoding: Field::from(f.encoding),
            enc_key_name: Field::from(f.enc_key_name),
            enc_algo: Field::from(f.enc_algo),
            iv_nonce: Field::from(f.iv_nonce),
            ske_enc_key_name: Field::from(f.ske_enc_key_name),
            ske_enc_algo: Field::from(f.ske_enc_algo),
            app_metadata: Field::from(f.app_metadata),
        })
    }

    /// Merges this write into the previous metadata (the reference's
    /// `update` rules, keys-and-metadata §6.3, plus the 3.16 timestamps).
    /// `old` must already be filtered to active-or-unborn records: an expired
    /// record is treated as absent.
    pub fn merge(self, old: Option<StoredMeta>, writer: &str, now: i64) -> StoredMeta {
        let existed = old.is_some();
        let old = old.unwrap_or_default();
        let ttl = self.ttl.or(old.ttl);
        let ttb = self.ttb.or(old.ttb);
        let (ttr, ccd) = match (self.ttr, self.ccd) {
            (Some(ttr), Some(ccd)) => (Some(ttr), Some(ccd)),
            (Some(ttr), None) => (Some(ttr), old.ccd),
            (None, Some(ccd)) => (old.ttr, old.ttr.map(|_| ccd)),
            (None, None) => (old.ttr, old.ccd),
        };
        // ccd only means something while a ttr is in force.
        let ccd = if ttr.is_some() { ccd } else { None };
        // The fields were bounded by `from_fragment` (a century each), so
        // these sums stay far inside i64; saturating keeps that true even for
        // a stored record written by an older build.
        let available_at = self
            .available_at
            .or_else(|| self.ttb.map(|ttb| now.saturating_add(ttb)))
            .or(if existed { old.available_at } else { None });
        let expires_at = match (self.expires_at, self.ttl) {
            (Some(at), _) => Some(at),
            (None, Some(0)) => None,
            (None, Some(ttl)) => Some(now.saturating_add(ttl).saturating_add(ttb.unwrap_or(0))),
            // A write that says nothing about expiry keeps the clock running.
            (None, None) => old.expires_at,
        };
        let ttl = ttl.or_else(|| self.expires_at.map(|at| at.saturating_sub(now).max(1)));
        let refresh_at = refresh_at(ttr, now);
        StoredMeta {
            created_by: if existed {
                old.created_by
            } else {
                Some(writer.to_string())
            },
            updated_by: Some(writer.to_string()),
            created_at: self
                .created_at
                .unwrap_or(if existed { old.created_at } else { now }),
            updated_at: self.updated_at.unwrap_or(now),
            available_at,
            expires_at,
            refresh_at,
            version: if existed {
                old.version.saturating_add(1)
            } else {
                0
            },
            ttl,
            ttb,
            ttr,
            ccd,
            is_binary: self.is_binary,
            is_encrypted: self.is_encrypted,
            data_signature: self.data_signature.apply(old.data_signature),
            shared_key_enc: self.shared_key_enc.apply(old.shared_key_enc),
            pub_key_cs: self.pub_key_cs.apply(old.pub_key_cs),
            pub_key_hash: self.pub_key_hash.apply(old.pub_key_hash),
            hashing_algo: self.hashing_algo.apply(old.hashing_algo),
            encoding: self.encoding.apply(old.encoding),
            enc_key_name: self.enc_key_name.apply(old.enc_key_name),
            enc_algo: self.enc_algo.apply(old.enc_algo),
            iv_nonce: self.iv_nonce.apply(old.iv_nonce),
            ske_enc_key_name: self.ske_enc_key_name.apply(old.ske_enc_key_name),
            ske_enc_algo: self.ske_enc_algo.apply(old.ske_enc_algo),
            immutable: self.immutable.unwrap_or(old.immutable),
            app_metadata: self.app_metadata.apply(old.app_metadata),
        }
    }
}

/// When a copy kept under `ttr` (seconds) is due for a refresh: `None`
/// for -1 (never) and for no ttr.
pub fn refresh_at(ttr: Option<i64>, now_ms: i64) -> Option<i64> {
    match ttr {
        Some(ttr) if ttr > 0 => Some(now_ms.saturating_add(ttr.saturating_mul(1000))),
        _ => None,
    }
}

/// One metadata value as a rendering receives it.
enum MetaValue<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    /// A JSON object (`pubKeyHash`).
    Object(&'a str),
}

/// Visits every non-null metadata field in the reference's key order
/// (keys-and-metadata.md §7.1), dates as Dart date strings.
fn visit_meta(meta: &StoredMeta, mut field: impl FnMut(&str, MetaValue<'_>)) {
    let date = |ms: i64| format_dart_utc(ms);
    if let Some(v) = &meta.created_by {
        field("createdBy", MetaValue::Str(v));
    }
    if let Some(v) = &meta.updated_by {
        field("updatedBy", MetaValue::Str(v));
    }
    field("createdAt", MetaValue::Str(&date(meta.created_at)));
    field("updatedAt", MetaValue::Str(&date(meta.updated_at)));
    let dates = [
        ("availableAt", meta.available_at),
        ("expiresAt", meta.expires_at),
        ("refreshAt", meta.refresh_at),
    ];
    for (name, value) in dates {
        if let Some(v) = value {
            field(name, MetaValue::Str(&date(v)));
        }
    }
    field("status", MetaValue::Str("active"));
    field("version", MetaValue::Int(i64::from(meta.version)));
    for (name, value) in [("ttl", meta.ttl), ("ttb", meta.ttb), ("ttr", meta.ttr)] {
        if let Some(v) = value {
            field(name, MetaValue::Int(v));
        }
    }
    if let Some(v) = meta.ccd {
        field("ccd", MetaValue::Bool(v));
    }
    field("isBinary", MetaValue::Bool(meta.is_binary));
    field("isEncrypted", MetaValue::Bool(meta.is_encrypted));
    let strings = [
        ("dataSignature", &meta.data_signature),
        ("sharedKeyEnc", &meta.shared_key_enc),
        ("pubKeyCS", &meta.pub_key_cs),
    ];
    for (name, value) in strings {
        if let Some(v) = value {
            field(name, MetaValue::Str(v));
        }
    }
    if let Some(hash) = &meta.pub_key_hash {
        let mut inner = String::new();
        let mut hash_obj = ObjectWriter::new(&mut inner);
        hash_obj.field_str("hash", hash);
        if let Some(algo) = &meta.hashing_algo {
            hash_obj.field_str("hashingAlgo", algo);
        }
        hash_obj.finish();
        field("pubKeyHash", MetaValue::Object(&inner));
    }
    let strings = [
        ("encoding", &meta.encoding),
        ("encKeyName", &meta.enc_key_name),
        ("encAlgo", &meta.enc_algo),
        ("ivNonce", &meta.iv_nonce),
        ("skeEncKeyName", &meta.ske_enc_key_name),
        ("skeEncAlgo", &meta.ske_enc_algo),
    ];
    for (name, value) in strings {
        if let Some(v) = value {
            field(name, MetaValue::Str(v));
        }
    }
    if meta.immutable {
        field("immutable", MetaValue::Bool(true));
    }
    if let Some(v) = &meta.app_metadata {
        field("appMetadata", MetaValue::Str(v));
    }
}

/// Writes the `llookup:meta` JSON (reference key order, nulls omitted,
/// native JSON types, Dart date strings).
pub fn write_meta_json(out: &mut String, meta: &StoredMeta) {
    let mut obj = ObjectWriter::new(out);
    visit_meta(meta, |name, value| {
        match value {
            MetaValue::Str(v) => obj.field_str(name, v),
            MetaValue::Int(v) => obj.field_i64(name, v),
            MetaValue::Bool(v) => obj.field_bool(name, v),
            MetaValue::Object(v) => obj.field_raw(name, v),
        };
    });
    obj.finish();
}

/// Writes the metadata of a `sync:from` entry (sync.md §3): the same
/// fields and order as [`write_meta_json`], every value a JSON string
/// (`"version":"0"`, `"isEncrypted":"true"`; `pubKeyHash` is its JSON
/// object's text).
pub fn write_meta_json_as_strings(out: &mut String, meta: &StoredMeta) {
    let mut obj = ObjectWriter::new(out);
    visit_meta(meta, |name, value| {
        match value {
            MetaValue::Str(v) | MetaValue::Object(v) => obj.field_str(name, v),
            MetaValue::Int(v) => obj.field_str(name, &v.to_string()),
            MetaValue::Bool(v) => obj.field_str(name, if v { "true" } else { "false" }),
        };
    });
    obj.finish();
}

/// Writes the `:all` JSON: `{"key":…,"data":…,"metaData":{…}}`, `data`
/// omitted when the value is null.
pub fn write_all_json(out: &mut String, key: &str, record: &StoredRecord) {
    let mut meta = String::new();
    write_meta_json(&mut meta, &record.meta);
    let mut obj = ObjectWriter::new(out);
    obj.field_str("key", key);
    if let Some(value) = &record.value {
        obj.field_str("data", value);
    }
    obj.field_raw("metaData", &meta);
    obj.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(ttl: Option<i64>) -> MetaUpdate {
        MetaUpdate::from_fragment(&MetaFragment {
            ttl,
            is_encrypted: Some(true),
            ..MetaFragment::default()
        })
        .expect("valid")
    }

    #[test]
    fn a_new_record_gets_creation_fields_and_derived_expiry() {
        let meta = update(Some(60_000)).merge(None, "@alice", 1_000);
        assert_eq!(meta.created_by.as_deref(), Some("@alice"));
        assert_eq!(
            (meta.created_at, meta.updated_at, meta.version),
            (1_000, 1_000, 0)
        );
        assert_eq!(meta.expires_at, Some(61_000));
        assert!(meta.is_encrypted);
    }

    #[test]
    fn an_update_keeps_creation_bumps_version_and_keeps_strings() {
        let mut first = update(None);
        first.iv_nonce = Field::Set("iv1".into());
        first.data_signature = Field::Set("sig".into());
        let old = first.merge(None, "@alice", 1_000);
        let mut second = update(None);
        second.is_encrypted = false;
        second.data_signature = Field::Clear;
        let meta = second.merge(Some(old), "@alice", 2_000);
        assert_eq!(
            (meta.created_at, meta.updated_at, meta.version),
            (1_000, 2_000, 1)
        );
        assert_eq!(meta.iv_nonce.as_deref(), Some("iv1"));
        assert_eq!(meta.data_signature, None);
        assert!(!meta.is_encrypted);
    }

    #[test]
    fn ttl_zero_clears_expiry_and_ccd_needs_ttr() {
        let old = update(Some(5)).merge(None, "@alice", 0);
        assert_eq!(
            update(Some(0)).merge(Some(old), "@alice", 10).expires_at,
            None
        );
        let mut with_ccd = update(None);
        with_ccd.ccd = Some(true);
        assert_eq!(with_ccd.clone().merge(None, "@alice", 0).ccd, None);
        with_ccd.ttr = Some(-1);
        let meta = with_ccd.merge(None, "@alice", 0);
        assert_eq!(
            (meta.ttr, meta.ccd, meta.refresh_at),
            (Some(-1), Some(true), None)
        );
    }

    #[test]
    fn time_fields_beyond_a_century_are_refused_before_any_arithmetic() {
        for fragment in [
            MetaFragment {
                ttl: Some(i64::MAX),
                ..MetaFragment::default()
            },
            MetaFragment {
                ttb: Some(TIME_TO_LIVE_MS_MAX + 1),
                ..MetaFragment::default()
            },
            MetaFragment {
                ttr: Some(i64::MAX / 1000 + 1),
                ..MetaFragment::default()
            },
        ] {
            let error = MetaUpdate::from_fragment(&fragment)
                .map(|_| ())
                .unwrap_err();
            assert_eq!(error.code, AtCode::InvalidSyntax, "{fragment:?}");
            assert!(error.message.contains("at most"), "{}", error.message);
        }
        let longest = MetaUpdate::from_fragment(&MetaFragment {
            ttl: Some(TIME_TO_LIVE_MS_MAX),
            ttb: Some(TIME_TO_LIVE_MS_MAX),
            ttr: Some(TIME_TO_REFRESH_SECS_MAX),
            ..MetaFragment::default()
        })
        .expect("the horizon itself is accepted");
        let meta = longest.merge(None, "@alice", i64::MAX - 1);
        assert_eq!(meta.expires_at, Some(i64::MAX), "saturates, never wraps");
    }

    #[test]
    fn invalid_ttl_ttb_ttr_are_syntax_errors() {
        let bad = |f: MetaFragment<'static>| {
            MetaUpdate::from_fragment(&f)
                .map(|_| ())
                .map_err(|e| e.message)
        };
        assert_eq!(
            bad(MetaFragment {
                ttl: Some(-1),
                ..MetaFragment::default()
            }),
            Err("Valid value for TTL should be greater than or equal to 0".into())
        );
        assert!(
            bad(MetaFragment {
                ttr: Some(-2),
                ..MetaFragment::default()
            })
            .is_err()
        );
        assert!(
            bad(MetaFragment {
                app_metadata: Some("%%%"),
                ..MetaFragment::default()
            })
            .is_err()
        );
    }

    #[test]
    fn meta_json_has_the_reference_shape() {
        let meta = StoredMeta {
            created_by: Some("@alice".into()),
            updated_by: Some("@alice".into()),
            created_at: 1_729_764_000_123,
            updated_at: 1_729_764_000_123,
            expires_at: Some(1_729_764_060_123),
            ttl: Some(60_000),
            is_encrypted: true,
            ..StoredMeta::default()
        };
        let mut out = String::new();
        write_meta_json(&mut out, &meta);
        assert_eq!(
            out,
            r#"{"createdBy":"@alice","updatedBy":"@alice","createdAt":"2024-10-24 10:00:00.123Z","updatedAt":"2024-10-24 10:00:00.123Z","expiresAt":"2024-10-24 10:01:00.123Z","status":"active","version":0,"ttl":60000,"isBinary":false,"isEncrypted":true}"#
        );
    }
}
