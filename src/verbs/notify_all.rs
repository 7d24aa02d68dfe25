//! `notify:all` (notifications.md §7, changes §6.3; deprecated for
//! `notify:multi`): one notification per distinct recipient, each signed
//! with the server's signing key (`dataSignature` over `<key><owner>`),
//! answered `data: {"@a":"<id1>",…}` (a space after `data:`). Unlike the
//! reference before 3.16.4 it needs the owner's authentication (the table
//! says so) and refuses keys of other atSigns, as 3.16.6 does.

use super::Reply;
use super::notify;
use super::notify_multi::{distinct_recipients, write_ids};
use crate::auth::signing;
use crate::connection::Owner;
use crate::context::ServerContext;
use crate::error::{AtCode, AtError};
use crate::protocol::command::{MessageType, Notify, NotifyAll};
use crate::protocol::metadata::MetaFragment;

pub async fn apply(
    server: &ServerContext,
    owner: &Owner,
    cmd: NotifyAll<'_>,
    rng: &ring::rand::SystemRandom,
    payload: &mut String,
) -> Result<Reply, AtError> {
    let names = cmd.recipients.split(',').filter(|name| !name.is_empty());
    let recipients = distinct_recipients(names)?;
    if recipients.is_empty() {
        return Err(AtError::new(
            AtCode::IllegalArguments,
            "notify:all names no recipient",
        ));
    }
    let message_type = cmd.message_type.unwrap_or(MessageType::Key);
    let owner_part = match (message_type, cmd.owner) {
        (MessageType::Text, _) => String::new(),
        (MessageType::Key, Some(named)) => {
            crate::protocol::atsign::normalize_atsign(named).map_err(AtError::from)?
        }
        (MessageType::Key, None) => owner.atsign().to_string(),
    };
    let signature = signing::load(&owner.tenant().store, owner.atsign())
        .and_then(|key| key.sign_base64(format!("{}{owner_part}", cmd.key).as_bytes()))
        .map_err(|e| {
            AtError::new(
                AtCode::InternalServerException,
                format!("the notification cannot be signed: {e}"),
            )
        })?;
    let ttl = cmd.ttl.and_then(|v| i64::try_from(v).ok());
    let ttb = cmd.ttb.and_then(|v| i64::try_from(v).ok());
    let meta = MetaFragment {
        ttl,
        ttb,
        ttr: cmd.ttr,
        ccd: cmd.ccd,
        data_signature: Some(&signature),
        ..MetaFragment::default()
    };
    let mut sent = Vec::with_capacity(recipients.len());
    for recipient in &recipients {
        let one = Notify {
            operation: cmd.operation,
            message_type: Some(message_type),
            meta,
            owner: match message_type {
                MessageType::Key => Some(owner_part.trim_start_matches('@')),
                MessageType::Text => None,
            },
            value: cmd.value,
            ..Notify::to(recipient.trim_start_matches('@'), cmd.key)
        };
        let id = notify::sent_to(server, owner.tenant(), recipient, &one, rng).await?;
        sent.push((recipient.as_str(), id));
    }
    write_ids(&sent, payload);
    Ok(Reply::DataSpaced)
}
