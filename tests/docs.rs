//! The operator's documentation keeps up with the code: every bound in
//! `src/limits.rs` is listed in `docs/OPERATIONS.md`, with its value.

// Tests fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

/// `(name, value expression)` of every `pub const` in limits.rs.
fn limits() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/limits.rs");
    let text = std::fs::read_to_string(path).expect("limits.rs");
    let mut found = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("pub const ") else {
            continue;
        };
        let Some((name, rest)) = rest.split_once(':') else {
            continue;
        };
        let mut value = rest
            .split_once('=')
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        while !value.ends_with(';') {
            let next = lines.next().expect("a constant ends with `;`");
            value.push(' ');
            value.push_str(next.trim());
        }
        found.push((
            name.trim().to_string(),
            value.trim_end_matches(';').trim().to_string(),
        ));
    }
    found
}

#[test]
fn every_limit_is_in_the_operations_guide_with_its_value() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/OPERATIONS.md");
    let guide = std::fs::read_to_string(path).expect("OPERATIONS.md");
    let limits = limits();
    assert!(limits.len() > 50, "limits.rs was read: {limits:?}");
    let missing: Vec<String> = limits
        .iter()
        .filter(|(name, value)| !guide.contains(&format!("| `{name}` | `{value}` |")))
        .map(|(name, value)| format!("{name} = {value}"))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/OPERATIONS.md misses these limits (or their values): {missing:#?}"
    );
}
