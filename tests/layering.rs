//! The crate's layering rule, checked: every module may use only modules of
//! a lower layer (docs/ARCHITECTURE.md, "Layers"). A `crate::x` path in code
//! (not in comments) from a module to one of its own layer or above fails
//! this test, so an import circle cannot come back unnoticed.

// Tests and benches fail loudly on anything unexpected (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

/// Layers from the bottom up; a module may use the modules of lower layers.
const LAYERS: &[&[&str]] = &[
    &[
        "error",
        "limits",
        "clock",
        "health",
        "signals",
        "telemetry",
        "files",
    ],
    &["devcerts"],
    &["protocol", "tls", "admission"],
    &["storage", "cli", "monitors"],
    &["auth"],
    &["client", "context"],
    &["remote"],
    &["connection"],
    &["verbs"],
    &["session"],
    &["directory", "shard"],
    &["app"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level module a source file belongs to (`src/verbs/gate.rs` ⇒
/// `verbs`), or `None` for the crate root and the binary.
fn module_of(path: &Path, src: &Path) -> Option<String> {
    let relative = path.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

fn rust_files(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The `crate::<module>` paths used in the code of `text` (comments and
/// doc comments are not code).
fn crate_paths(text: &str) -> Vec<String> {
    let mut used = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                used.push(name);
            }
            rest = after;
        }
    }
    used
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let Some(module) = module_of(file, &src) else {
            continue;
        };
        let own = layer_of(&module)
            .unwrap_or_else(|| panic!("module {module} has no layer in this test"));
        let text = std::fs::read_to_string(file).expect("read");
        for used in crate_paths(&text) {
            if used == module {
                continue;
            }
            let Some(layer) = layer_of(&used) else {
                panic!("{} uses crate::{used}, which has no layer", file.display());
            };
            if layer >= own {
                violations
                    .entry(format!("{}", file.display()))
                    .or_default()
                    .push(used);
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports that go up or sideways: {violations:#?}"
    );
}

#[test]
fn the_path_scanner_ignores_comments() {
    let text =
        "use crate::verbs::x; // crate::app\n/// [`crate::shard`]\nlet a = crate::limits::X;";
    assert_eq!(crate_paths(text), ["verbs", "limits"]);
}
