//! `batch:[{"id":1,"command":"update:…"},…]`: several commands in one line,
//! each through the same gate as a top-level line and answered in one JSON
//! array (sync.md §5):
//! `data:[{"id":1,"response":{"data":"17"}},{"id":2,"response":{"error_code":"AT0015","error_message":"key not found"}}]`.
//!
//! Writes run one after another, each durable before the next starts, so
//! a later command sees an earlier one. Auto-notifications of the writes
//! are sent; stats notifications to monitors are not (the reference sends
//! those only for top-level commands). Commands that change or take over
//! the connection (`from`, `cram`, `pkam`, `pol`, `to`, `monitor`) and a
//! nested `batch` are refused inside a batch (AT0011), where the reference
//! would run them.

use std::time::Duration;

use super::{FollowUp, Reply};
use crate::clock::Clock;
use crate::connection::ConnectionState;
use crate::context::ServerContext;
use crate::error::{AtCode, AtError};
use crate::limits::{BATCH_COMMANDS_MAX, STORE_WAIT_MS};
use crate::protocol::command::{Batch, Command};
use crate::protocol::json::{self, JsonValue, ObjectWriter};
use crate::remote::peers::PeerAccess;
use crate::storage::WriteRequest;
use crate::verbs::gate::{self, Verdict};
use crate::verbs::table::Ordering;

pub async fn apply<C: Clock>(
    server: &ServerContext,
    state: &mut ConnectionState,
    clock: &C,
    peers: &dyn PeerAccess,
    cmd: Batch<'_>,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let requests = parse_requests(cmd.json)?;
    let mut follow_ups = Vec::new();
    payload.push('[');
    let mut first = true;
    let mut response = String::new();
    for (id, command) in requests {
        response.clear();
        let result = run_one(server, state, clock, peers, &command, &mut response).await;
        let result = match result {
            Ok(follow_up) => {
                follow_ups.extend(follow_up);
                Ok(())
            }
            Err(error) => Err(error),
        };
        if !first {
            payload.push(',');
        }
        first = false;
        write_result(payload, id, result.map(|()| response.as_str()));
    }
    payload.push(']');
    for follow_up in follow_ups {
        super::follow_up::run_without_stats(server, &follow_up, &server.rng).await;
    }
    Ok(Reply::Data)
}

/// The batch's `(id, command)` pairs. Not JSON, or not an array of
/// objects: AT0011, and the connection closes (as in the reference). An
/// element without an integer `id` and a string `command` is left out of
/// the reply, as the reference leaves out what it cannot run.
fn parse_requests(text: &str) -> Result<Vec<(i64, String)>, AtError> {
    let invalid = |why: &str| {
        AtError::new(
            AtCode::InternalServerException,
            format!("invalid batch request: {why}"),
        )
        .closing()
    };
    let parsed = json::parse(text).map_err(|e| invalid(&e.to_string()))?;
    let JsonValue::Array(items) = parsed else {
        return Err(invalid("not a JSON array"));
    };
    if items.len() > BATCH_COMMANDS_MAX {
        return Err(AtError::new(
            AtCode::InternalServerException,
            format!("a batch holds at most {BATCH_COMMANDS_MAX} commands"),
        ));
    }
    let mut requests = Vec::with_capacity(items.len());
    for item in &items {
        if !matches!(item, JsonValue::Object(_)) {
            return Err(invalid("an element is not an object"));
        }
        let id = item.get("id").and_then(JsonValue::as_i64);
        let command = item.get("command").and_then(JsonValue::as_str);
        if let (Some(id), Some(command)) = (id, command) {
            requests.push((id, command.to_string()));
        }
    }
    Ok(requests)
}

/// Runs one command of the batch, its payload into `response`; what
/// follows a durable write is returned, to run once the batch is done.
async fn run_one<C: Clock>(
    server: &ServerContext,
    state: &mut ConnectionState,
    clock: &C,
    peers: &dyn PeerAccess,
    command: &str,
    response: &mut String,
) -> Result<Option<FollowUp>, AtError> {
    let mut scratch = String::new();
    let planned = match gate::admit(
        state,
        command.as_bytes(),
        &mut scratch,
        std::time::Instant::now,
    ) {
        Verdict::Run(planned) => planned,
        Verdict::Refuse(error) => return Err(error),
        Verdict::Exit => return Err(not_in_batch("@exit")),
    };
    if let Some(verb) = refused_in_batch(&planned.command) {
        return Err(not_in_batch(verb));
    }
    match planned.row.ordering {
        Ordering::Write => {
            let write = super::prepare_write(planned)?;
            let store = write.tenant.store.clone();
            let request = WriteRequest {
                write: crate::storage::KeyWrite::new(write.key, write.commit, write.mutate),
                companion: write.companion,
                request_bytes: command.len(),
            };
            let limit = Duration::from_millis(STORE_WAIT_MS);
            let durable = async {
                let pending = store.submit_request(request).await?;
                pending.outcome().await.map_err(AtError::from)
            };
            let outcome = clock.deadline(limit, durable).await.map_err(|_| {
                AtError::new(
                    AtCode::DataStore,
                    format!("the data store did not answer within {STORE_WAIT_MS} ms"),
                )
            })??;
            super::write::write_commit_id(response, outcome.commit_id);
            Ok(write
                .follow_up
                .filter(|follow_up| follow_up.wanted(outcome.existed))
                .map(|follow_up| *follow_up))
        }
        Ordering::KeyedRead => {
            let Some(key) = super::read_key(&planned.command) else {
                return Err(not_in_batch(planned.row.name));
            };
            let mut assembled = String::new();
            key.assemble_into(&mut assembled);
            super::run_keyed_read(planned, &assembled, response)?;
            Ok(None)
        }
        Ordering::Barrier => {
            let reply = super::run(server, state, planned, clock, peers, response).await?;
            if reply == Reply::BarePrompt {
                response.clear();
            }
            Ok(None)
        }
    }
}

/// The verbs a batch does not run: they change who the connection is,
/// take it over, or nest.
fn refused_in_batch(command: &Command<'_>) -> Option<&'static str> {
    match command {
        Command::From(_) => Some("from"),
        Command::Cram(_) => Some("cram"),
        Command::Pkam(_) => Some("pkam"),
        Command::Pol => Some("pol"),
        Command::To(_) => Some("to"),
        Command::Monitor(_) => Some("monitor"),
        Command::Batch(_) => Some("batch"),
        _ => None,
    }
}

fn not_in_batch(verb: &str) -> AtError {
    AtError::new(
        AtCode::InternalServerException,
        format!("{verb} cannot run inside a batch"),
    )
}

/// `{"id":<id>,"response":{"data":"<payload>"}}`, or with `error_code` and
/// the code's generic `error_message` (the reference shows no detail).
fn write_result(out: &mut String, id: i64, result: Result<&str, AtError>) {
    let mut response = String::new();
    let mut fields = ObjectWriter::new(&mut response);
    match result {
        Ok(data) => {
            fields.field_str("data", data);
        }
        Err(error) => {
            fields.field_str("error_code", error.code.code());
            fields.field_str("error_message", error.code.description());
        }
    }
    fields.finish();
    let mut entry = ObjectWriter::new(out);
    entry.field_i64("id", id);
    entry.field_raw("response", &response);
    entry.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_carry_the_data_or_the_codes_generic_description() {
        let mut out = String::new();
        write_result(&mut out, 1, Ok("17"));
        out.push(',');
        let missing = AtError::key_not_found("nokey.wavi@alice");
        write_result(&mut out, 2, Err(missing));
        assert_eq!(
            out,
            r#"{"id":1,"response":{"data":"17"}},{"id":2,"response":{"error_code":"AT0015","error_message":"key not found"}}"#
        );
    }

    #[test]
    fn a_batch_that_is_not_an_array_of_objects_closes_the_connection() {
        for bad in ["notjson", r#"{"id":1}"#, "[1,2]"] {
            let error = parse_requests(bad).expect_err(bad);
            assert_eq!(error.code, AtCode::InternalServerException);
            assert!(error.close, "{bad}");
        }
    }

    #[test]
    fn elements_without_an_id_or_a_command_are_left_out() {
        let requests = parse_requests(
            r#"[{"id":1,"command":"noop:0"},{"command":"x"},{"id":"2","command":"y"},{"id":3}]"#,
        )
        .expect("parsed");
        assert_eq!(requests, [(1, "noop:0".to_string())]);
    }

    #[test]
    fn a_batch_is_bounded_in_commands() {
        let item = r#"{"id":1,"command":"noop:0"}"#;
        let many = format!("[{}]", vec![item; BATCH_COMMANDS_MAX + 1].join(","));
        let error = parse_requests(&many).expect_err("too many");
        assert!(error.message.contains("at most"), "{}", error.message);
        assert!(!error.close);
        let most = format!("[{}]", vec![item; BATCH_COMMANDS_MAX].join(","));
        assert_eq!(
            parse_requests(&most).expect("fits").len(),
            BATCH_COMMANDS_MAX
        );
    }
}
