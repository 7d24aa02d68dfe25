//! `info`: the server describes itself (version, uptime, features).

use std::fmt::{self, Formatter};

use crate::protocol::command::{Command, VerbId};
use crate::protocol::grammar::eat_ci;
use crate::protocol::parse::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoForm {
    Plain,
    Brief,
    Mtls,
    MtlsBrief,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    pub form: InfoForm,
}

pub(crate) const USAGE: &str = "info";

/// Only the whole lines `info`, `info:brief`, `info:mtls`, `info:mtlsbrief`.
#[inline(always)]
pub(crate) fn accepts(line: &str) -> bool {
    matches!(line, "info" | "info:brief" | "info:mtls" | "info:mtlsbrief")
}

/// `^info(:(brief|mtls|mtlsbrief))?$`
pub(crate) fn parse(s: &str) -> Result<Command<'_>, ParseError> {
    form(s)
        .map(|form| Command::Info(Info { form }))
        .ok_or(ParseError::Syntax(VerbId::Info))
}

fn form(s: &str) -> Option<InfoForm> {
    let r = eat_ci(s, "info")?;
    if r.is_empty() {
        Some(InfoForm::Plain)
    } else if r.eq_ignore_ascii_case(":brief") {
        Some(InfoForm::Brief)
    } else if r.eq_ignore_ascii_case(":mtls") {
        Some(InfoForm::Mtls)
    } else if r.eq_ignore_ascii_case(":mtlsbrief") {
        Some(InfoForm::MtlsBrief)
    } else {
        None
    }
}

pub(crate) fn encode(c: &Info, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str(match c.form {
        InfoForm::Plain => "info",
        InfoForm::Brief => "info:brief",
        InfoForm::Mtls => "info:mtls",
        InfoForm::MtlsBrief => "info:mtlsbrief",
    })
}
