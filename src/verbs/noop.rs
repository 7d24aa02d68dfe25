//! `noop:<ms>`: waits, then `data:ok`. Monitors use `noop:0` as a heartbeat.

use std::time::Duration;

use super::Reply;
use crate::clock::Clock;
use crate::error::{AtCode, AtError};
use crate::limits::NOOP_DELAY_MS_MAX;
use crate::protocol::command::Noop;

pub async fn apply<C: Clock>(clock: &C, cmd: Noop, payload: &mut String) -> Result<Reply, AtError> {
    if cmd.delay_ms > NOOP_DELAY_MS_MAX {
        return Err(AtError::new(
            AtCode::IllegalArguments,
            format!(
                "noop:<durationInMillis> where the duration maximum is {NOOP_DELAY_MS_MAX} milliseconds"
            ),
        ));
    }
    if cmd.delay_ms > 0 {
        clock.sleep(Duration::from_millis(cmd.delay_ms)).await;
    }
    payload.push_str("ok");
    Ok(Reply::Data)
}
