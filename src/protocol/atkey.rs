//! Key names: the keystore's canonical form and the reference's key-type
//! classification (keys-and-metadata.md §2–§5), written by hand.

/// The keystore rule: lower-case, trimmed, every whitespace character
/// removed. Every get/put/delete goes through it, which is what makes keys
/// case-insensitive on the wire.
pub fn canonical_key(raw: &str) -> String {
    let trimmed = raw.trim();
    if !trimmed
        .chars()
        .any(|c| c.is_uppercase() || c.is_whitespace())
    {
        return trimmed.to_owned();
    }
    trimmed
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The reference's `KeyType`, decided from the key text alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    Reserved,
    Public,
    Private,
    SelfKey,
    Shared,
    CachedPublic,
    CachedShared,
    Local,
    Invalid,
}

fn is_emoji(c: char) -> bool {
    matches!(c, '\u{a9}' | '\u{ae}' | '\u{2000}'..='\u{3300}' | '\u{fe00}'..='\u{fe0f}' | '\u{1f000}'..='\u{1fbff}')
}

fn is_atsign_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || is_emoji(c)
}

fn is_entity_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '\'' | '*' | '"' | '-') || is_emoji(c)
}

/// `atsignChar{1,55}` over the whole of `s`.
fn is_atsign_name(s: &str) -> bool {
    let n = s.chars().count();
    (1..=crate::limits::ATSIGN_CHARS_MAX).contains(&n) && s.chars().all(is_atsign_char)
}

/// `@<atsignChar>{1,55}`.
fn is_owner(s: &str) -> bool {
    s.strip_prefix('@').is_some_and(is_atsign_name)
}

/// `entity owner` over the whole of `s`; returns the owner's name.
fn entity_owner(s: &str) -> Option<&str> {
    let (entity, owner) = s.split_once('@')?;
    (!entity.is_empty() && entity.chars().all(is_entity_char) && is_atsign_name(owner))
        .then_some(owner)
}

/// `@<x>:` at the start of `s`: returns (x, rest).
fn shared_with(s: &str) -> Option<(&str, &str)> {
    let (head, rest) = s.strip_prefix('@')?.split_once(':')?;
    is_atsign_name(head).then_some((head, rest))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

const RESERVED_PRIVATEKEYS: [&str; 10] = [
    "at_pkam_publickey",
    "at_pkam_privatekey",
    "privatekey",
    "self_encryption_key",
    "at_secret",
    "at_secret_deleted",
    "signing_keypair_generated",
    "commitLogCompactionStats",
    "accessLogCompactionStats",
    "notificationCompactionStats",
];

/// Whether any reserved pattern of keys-and-metadata.md §3 occurs in `key`
/// (a search, not a full match, as in the reference).
pub fn is_reserved(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    let k = lower.as_str();
    // `privatekey:<name>` running to the end of the key.
    let mut from = 0;
    while let Some(i) = k[from..].find("privatekey:") {
        let tail = &k[from + i + "privatekey:".len()..];
        if RESERVED_PRIVATEKEYS
            .iter()
            .any(|r| tail.eq_ignore_ascii_case(r))
        {
            return true;
        }
        from += i + 1;
    }
    if k == "configkey" {
        return true;
    }
    if let Some(rest) = k.strip_prefix('_') {
        if !rest.is_empty() && rest.chars().all(is_entity_char) {
            return true;
        }
    }
    // The remaining patterns are `<name>@owner` at the end of the key.
    let Some(at) = k.rfind('@') else { return false };
    if !is_owner(&k[at..]) {
        return false;
    }
    let head = &k[..at];
    if [
        "private:blocklist",
        "public:signing_publickey",
        "public:publickey",
    ]
    .iter()
    .any(|p| head.ends_with(p))
    {
        return true;
    }
    if let Some(i) = head.rfind("shared_key.") {
        let tail = &head[i + "shared_key.".len()..];
        if is_atsign_name(tail) {
            return true;
        }
    }
    if let Some(pre) = head.strip_suffix(":signing_privatekey") {
        if let Some(i) = pre.rfind('@') {
            if is_atsign_name(&pre[i + 1..]) {
                return true;
            }
        }
    }
    if let Some((_, rest)) = shared_with(k) {
        if rest
            .strip_prefix("shared_key")
            .is_some_and(|r| r == &k[at..])
        {
            return true;
        }
    }
    false
}

/// Classifies a key like the reference `RegexUtil.keyType`: first match wins,
/// case-insensitive. The reference decides from the key text alone (a shared
/// key's recipient is compared with the key's own owner), so `owner_hint` is
/// not consulted; it is part of the signature so call sites can pass the
/// serving atSign uniformly should a rule ever need it.
pub fn key_type(key: &str, owner_hint: Option<&str>) -> KeyType {
    let _ = owner_hint;
    if is_reserved(key) {
        return KeyType::Reserved;
    }
    if let Some(rest) = strip_prefix_ci(key, "public:") {
        return if entity_owner(rest).is_some() {
            KeyType::Public
        } else {
            KeyType::Invalid
        };
    }
    if let Some(rest) = strip_prefix_ci(key, "private:") {
        let rest = shared_with(rest).map_or(rest, |(_, r)| r);
        if entity_owner(rest).is_some() {
            return KeyType::Private;
        }
    }
    // self / shared: [sharedWith] entity owner
    if let Some((with, rest)) = shared_with(key) {
        if let Some(owner) = entity_owner(rest) {
            return if with.eq_ignore_ascii_case(owner) {
                KeyType::SelfKey
            } else {
                KeyType::Shared
            };
        }
    } else if entity_owner(key).is_some() {
        return KeyType::SelfKey;
    }
    if let Some(rest) = strip_prefix_ci(key, "cached:public:") {
        if entity_owner(rest).is_some() {
            return KeyType::CachedPublic;
        }
    }
    if let Some(rest) = strip_prefix_ci(key, "cached:") {
        if let Some((_, rest)) = shared_with(rest) {
            if entity_owner(rest).is_some() {
                return KeyType::CachedShared;
            }
        }
    }
    if let Some(rest) = strip_prefix_ci(key, "local:") {
        if entity_owner(rest).is_some() {
            return KeyType::Local;
        }
    }
    KeyType::Invalid
}

/// Whether a write to `key` gets a commit-log entry (sync.md; README trap 9):
/// not for `private:`, `privatekey:`, `local:`, nor `public:_x`, but yes for
/// `public:__x`.
pub fn is_committed(key: &str) -> bool {
    if strip_prefix_ci(key, "private:").is_some()
        || strip_prefix_ci(key, "privatekey:").is_some()
        || strip_prefix_ci(key, "local:").is_some()
    {
        return false;
    }
    match strip_prefix_ci(key, "public:_") {
        Some(rest) => rest.starts_with('_'),
        None => true,
    }
}

/// The owner's name (after the last `@`), if the key has a non-empty one.
pub fn owner(key: &str) -> Option<&str> {
    let (_, o) = key.rsplit_once('@')?;
    (!o.is_empty()).then_some(o)
}

/// The namespace: the text after the last `.` of the part before `@owner`.
pub fn namespace(key: &str) -> Option<&str> {
    let name = key.rsplit_once('@').map_or(key, |(n, _)| n);
    let (_, ns) = name.rsplit_once('.')?;
    (!ns.is_empty()).then_some(ns)
}

/// The length the reference's keystore limit measures: the key's UTF-7 form
/// (Hive stores keys UTF-7 encoded). Printable ASCII is one character each
/// except `+` (`+-`); other runs become `+<base64 of UTF-16>-`.
pub fn reference_len(key: &str) -> usize {
    let direct = |c: char| matches!(c, '\t' | '\n' | '\r' | ' '..='~') && c != '+';
    let mut len = 0;
    let mut run_units = 0usize;
    let flush = |units: &mut usize, len: &mut usize| {
        if *units > 0 {
            *len += 2 + (*units * 16).div_ceil(6);
            *units = 0;
        }
    };
    for c in key.chars() {
        if direct(c) {
            flush(&mut run_units, &mut len);
            len += 1;
        } else if c == '+' {
            flush(&mut run_units, &mut len);
            len += 2;
        } else {
            run_units += c.len_utf16();
        }
    }
    flush(&mut run_units, &mut len);
    len
}

/// verbs.md §10: keys that `delete` refuses (unless `:cached`). `name_with_owner`
/// is `<key>@<owner>` before any `public:`/`@for:` prefix; `owner` may be given
/// with or without `@`. Compared in any case (3.16.6).
pub fn is_protected(name_with_owner: &str, owner: &str) -> bool {
    let owner = crate::protocol::atsign::name_without_at(owner);
    if name_with_owner.eq_ignore_ascii_case("at_pkam_publickey") {
        return true;
    }
    let Some((name, o)) = name_with_owner.rsplit_once('@') else {
        return false;
    };
    o.eq_ignore_ascii_case(owner)
        && ["signing_publickey", "signing_privatekey", "publickey"]
            .iter()
            .any(|p| name.eq_ignore_ascii_case(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_key_lowercases_and_strips_spaces() {
        assert_eq!(canonical_key(" Phone .Wavi@Alice "), "phone.wavi@alice");
        assert_eq!(canonical_key("x@alice"), "x@alice");
    }

    #[test]
    fn classifies_the_documented_examples() {
        use KeyType::*;
        let cases = [
            ("public:location.wavi@alice", Public),
            ("phone.wavi@alice", SelfKey),
            ("@alice:phone.wavi@alice", SelfKey),
            ("@bob:phone.wavi@alice", Shared),
            ("@Alice:phone@alice", SelfKey),
            ("cached:@alice:phone.wavi@bob", CachedShared),
            ("cached:public:location@bob", CachedPublic),
            ("private:_abc@alice", Private),
            ("private:@bob:x@alice", Private),
            ("local:x@alice", Local),
            ("privatekey:at_secret", Reserved),
            ("privatekey:at_pkam_publickey", Reserved),
            ("configkey", Reserved),
            ("_latestnotificationidv2", Reserved),
            ("public:publickey@alice", Reserved),
            ("public:signing_publickey@alice", Reserved),
            ("@alice:signing_privatekey@alice", Reserved),
            ("@bob:shared_key@alice", Reserved),
            ("shared_key.bob@alice", Reserved),
            ("private:blocklist@alice", Reserved),
            ("phone", Invalid),
            ("public:cached:x@alice", Invalid),
            ("public:a:b@alice", Invalid),
            ("x@a@b", Invalid),
            ("x@🦄", SelfKey),
        ];
        for (k, want) in cases {
            assert_eq!(key_type(k, None), want, "{k}");
        }
        let long_owner = format!("x@{}", "a".repeat(56));
        assert_eq!(key_type(&long_owner, None), KeyType::Invalid);
    }

    #[test]
    fn commit_exclusions_follow_trap_9() {
        assert!(!is_committed("privatekey:at_pkam_publickey"));
        assert!(!is_committed("private:x@alice"));
        assert!(!is_committed("local:x@alice"));
        assert!(!is_committed("public:_x@alice"));
        assert!(is_committed("public:__x@alice"));
        assert!(is_committed("public:x@alice"));
        assert!(is_committed("@bob:x@alice"));
        assert!(is_committed("_x@alice"));
    }

    #[test]
    fn owner_and_namespace() {
        assert_eq!(owner("@bob:phone.home.wavi@alice"), Some("alice"));
        assert_eq!(owner("privatekey:at_secret"), None);
        assert_eq!(namespace("@bob:phone.home.wavi@alice"), Some("wavi"));
        assert_eq!(namespace("public:x@alice"), None);
    }

    #[test]
    fn reference_len_counts_utf7() {
        assert_eq!(reference_len("phone.wavi@alice"), 16);
        // One BMP char: +<3 base64 chars>-
        assert_eq!(reference_len("é"), 5);
        // An emoji is a surrogate pair: 32 bits -> 6 base64 chars.
        assert_eq!(reference_len("x😀y"), 1 + 8 + 1);
        assert_eq!(reference_len("a+b"), 4);
    }

    #[test]
    fn protected_keys_in_any_case() {
        assert!(is_protected("publickey@alice", "@alice"));
        assert!(is_protected("Signing_PublicKey@Alice", "alice"));
        assert!(is_protected("signing_privatekey@alice", "@alice"));
        assert!(is_protected("at_pkam_publickey", "@alice"));
        assert!(!is_protected("publickey@bob", "@alice"));
        assert!(!is_protected("phone@alice", "@alice"));
    }
}
