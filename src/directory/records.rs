//! The directory's records: atSign name (no `@`, lower-case) ⇒ `host:port`.
//! Loaded from `--record name=host:port` flags and from a records file (one
//! `name=host:port` per line, `#` comments), held in memory.

use std::collections::HashMap;
use std::path::Path;

use crate::limits::RECORD_ADDRESS_CHARS_MAX;

#[derive(Debug, Default, Clone)]
pub struct Records {
    by_name: HashMap<String, String>,
}

impl Records {
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Records, String> {
        let mut records = Records::default();
        for (name, address) in entries {
            records.insert(name, address)?;
        }
        Ok(records)
    }

    /// Adds or replaces one record after checking its shape.
    pub fn insert(&mut self, name: &str, address: &str) -> Result<(), String> {
        let name = name.trim().trim_start_matches('@').to_lowercase();
        let address = address.trim();
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ':' || c == '@') {
            return Err(format!("invalid atSign name in directory record: {name:?}"));
        }
        let valid_port = address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid_port
            || address.len() > RECORD_ADDRESS_CHARS_MAX
            || address.contains(char::is_whitespace)
        {
            return Err(format!(
                "invalid address for {name}: {address:?} (want host:port)"
            ));
        }
        self.by_name.insert(name, address.to_string());
        Ok(())
    }

    /// Parses `name=host:port`.
    pub fn insert_spec(&mut self, spec: &str) -> Result<(), String> {
        let (name, address) = spec
            .split_once('=')
            .ok_or_else(|| format!("directory record {spec:?} is not name=host:port"))?;
        self.insert(name, address)
    }

    pub fn load_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            self.insert_spec(line)
                .map_err(|e| format!("{}:{}: {e}", path.display(), number + 1))?;
        }
        Ok(())
    }

    /// Looks up a lower-cased query; one leading `@` is ignored.
    pub fn lookup(&self, query: &str) -> Option<&str> {
        self.by_name
            .get(query.strip_prefix('@').unwrap_or(query))
            .map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_validated_and_normalised() {
        let mut r = Records::default();
        r.insert_spec("@Alice=localhost:6464").expect("valid");
        assert_eq!(r.lookup("alice"), Some("localhost:6464"));
        assert!(r.insert_spec("bob=localhost").is_err());
        assert!(r.insert_spec("bob").is_err());
        assert!(r.insert_spec("b b=h:1").is_err());
    }

    #[test]
    fn files_load_with_comments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("records");
        std::fs::write(
            &path,
            "# directory\nalice=127.0.0.1:6464\n\nbob=localhost:7000\n",
        )
        .expect("write");
        let mut r = Records::default();
        r.load_file(&path).expect("load");
        assert_eq!(r.len(), 2);
        std::fs::write(&path, "broken\n").expect("write");
        assert!(r.load_file(&path).unwrap_err().contains(":1:"));
    }
}
