//! `notify:multi` (changes §6.2): one key notification to several atSigns,
//! each copy an ordinary notification with its own id, answered
//! `data:{"@bob":"<id1>","@sitaram":"<id2>"}` in the order first named.

use super::Reply;
use super::notify;
use crate::connection::Owner;
use crate::context::ServerContext;
use crate::error::{AtCode, AtError};
use crate::limits::NOTIFY_RECIPIENTS_MAX;
use crate::protocol::atsign::normalize_atsign;
use crate::protocol::command::{MessageType, Notify, NotifyMulti, NotifyOp};
use crate::protocol::json::ObjectWriter;

pub async fn apply(
    server: &ServerContext,
    owner: &Owner,
    cmd: NotifyMulti<'_>,
    rng: &ring::rand::SystemRandom,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let recipients = distinct_recipients(cmd.recipient_list())?;
    let mut sent = Vec::with_capacity(recipients.len());
    for recipient in &recipients {
        let one = Notify {
            operation: Some(NotifyOp::Update),
            message_type: Some(MessageType::Key),
            ttln: cmd.ttln,
            e_atn: cmd.e_atn,
            eph: cmd.eph,
            meta: cmd.meta,
            owner: Some(cmd.owner),
            value: cmd.value,
            ..Notify::to(recipient.trim_start_matches('@'), cmd.key)
        };
        let id = notify::sent_to(server, owner.tenant(), recipient, &one, rng).await?;
        sent.push((recipient.as_str(), id));
    }
    write_ids(&sent, payload);
    Ok(Reply::Data)
}

/// The normalised recipients in the order first named, each once
/// (`@bob,@BOB` notifies once). More than [`NOTIFY_RECIPIENTS_MAX`] names
/// (repeats included) is AT0022, before any is notified: one request line
/// could otherwise name millions.
pub(super) fn distinct_recipients<'a>(
    names: impl Iterator<Item = &'a str>,
) -> Result<Vec<String>, AtError> {
    let mut recipients: Vec<String> = Vec::new();
    for (seen, name) in names.enumerate() {
        if seen >= NOTIFY_RECIPIENTS_MAX {
            return Err(AtError::new(
                AtCode::IllegalArguments,
                format!("a notification names at most {NOTIFY_RECIPIENTS_MAX} recipients"),
            ));
        }
        let atsign = normalize_atsign(name).map_err(AtError::from)?;
        if !recipients.contains(&atsign) {
            recipients.push(atsign);
        }
    }
    Ok(recipients)
}

/// `{"@bob":"<id>",…}`.
pub(super) fn write_ids(sent: &[(&str, String)], payload: &mut String) {
    let mut object = ObjectWriter::new(payload);
    for (atsign, id) in sent {
        object.field_str(atsign, id);
    }
    object.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_normalised_and_named_once_in_first_order() {
        let got =
            distinct_recipients(["@bob", "@Sitaram", "@BOB", "@sitaram"].into_iter()).unwrap();
        assert_eq!(got, ["@bob", "@sitaram"]);
        let mut payload = String::new();
        write_ids(
            &[("@bob", "1".into()), ("@sitaram", "2".into())],
            &mut payload,
        );
        assert_eq!(payload, r#"{"@bob":"1","@sitaram":"2"}"#);
    }

    #[test]
    fn a_recipient_list_is_bounded_repeats_included() {
        let most: Vec<String> = (0..NOTIFY_RECIPIENTS_MAX)
            .map(|i| format!("@r{i}"))
            .collect();
        assert_eq!(
            distinct_recipients(most.iter().map(String::as_str))
                .unwrap()
                .len(),
            NOTIFY_RECIPIENTS_MAX
        );
        let too_many = std::iter::repeat_n("@bob", NOTIFY_RECIPIENTS_MAX + 1);
        let refused = distinct_recipients(too_many).unwrap_err();
        assert_eq!(refused.code, AtCode::IllegalArguments);
    }
}
