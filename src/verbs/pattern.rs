//! The one way a client-supplied regular expression is compiled (`scan`,
//! `stats:3`/`stats:15`, `notify:list`, later `monitor`), with one bound
//! on its length and one on what compiling it may cost.
//!
//! The `regex` crate matches in time linear in the input, so no pattern can
//! backtrack catastrophically; what a hostile pattern can still do is make
//! the compiled program or its lazy DFA large, or nest deeply. All three
//! are bounded here.

use crate::error::{AtCode, AtError};
use crate::limits::{PATTERN_CHARS_MAX, PATTERN_COMPILED_BYTES_MAX, PATTERN_NESTING_MAX};

/// Compiles `text` with search semantics, or AT0003 naming the bound it hit.
pub fn compile(text: &str) -> Result<regex::Regex, AtError> {
    if text.len() > PATTERN_CHARS_MAX {
        return Err(AtError::new(
            AtCode::InvalidSyntax,
            format!("regex longer than {PATTERN_CHARS_MAX} characters"),
        ));
    }
    regex::RegexBuilder::new(text)
        .size_limit(PATTERN_COMPILED_BYTES_MAX)
        .dfa_size_limit(PATTERN_COMPILED_BYTES_MAX)
        .nest_limit(PATTERN_NESTING_MAX)
        .build()
        .map_err(|e| {
            AtError::new(
                AtCode::InvalidSyntax,
                format!("Invalid regex: {e}").replace('\n', " "),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_long_huge_and_deep_patterns_are_syntax_errors() {
        let refused = |text: &str| compile(text).map(|_| ()).map_err(|e| e.code);
        assert_eq!(refused("("), Err(AtCode::InvalidSyntax));
        assert_eq!(
            refused(&"a".repeat(PATTERN_CHARS_MAX + 1)),
            Err(AtCode::InvalidSyntax)
        );
        // Counted repetition blows up the compiled program, not the text.
        assert_eq!(refused(r"(\w{500}){500}"), Err(AtCode::InvalidSyntax));
        let deep = format!("{}a{}", "(".repeat(300), ")".repeat(300));
        assert_eq!(refused(&deep), Err(AtCode::InvalidSyntax));
        assert!(compile(r".*\.wavi").is_ok());
        assert!(compile(r"^public:.*@alice$").is_ok());
    }
}
