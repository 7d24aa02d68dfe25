//! The whole-session fuzz target's entry point: one scratch server per
//! process (stores in a temporary folder), and each input run through
//! [`crate::session::fuzzing::whole_session`].

use std::sync::OnceLock;

use super::ScratchServer;

/// The atSign the fuzzed sessions may log in as, with its CRAM secret.
pub const FUZZ_OWNER: (&str, &str) = ("@fuzz", "fuzz-cram-secret");

/// Runs one fuzz input as a whole session; panics when a property fails
/// (and when the scratch server cannot be made, which is no finding but
/// stops the run loudly).
pub fn whole_session(data: &[u8]) {
    static SERVER: OnceLock<Option<ScratchServer>> = OnceLock::new();
    let server = SERVER.get_or_init(|| match ScratchServer::open(&[FUZZ_OWNER]) {
        Ok(server) => Some(server),
        Err(error) => {
            eprintln!("cannot open the fuzzing server: {error}");
            None
        }
    });
    let Some(server) = server else {
        std::process::abort();
    };
    crate::session::fuzzing::whole_session(&server.server, FUZZ_OWNER, data);
}
