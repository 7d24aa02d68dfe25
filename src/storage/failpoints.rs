//! Failpoints: make the write actor fail on purpose, to test that a failed
//! or panicking batch poisons the store and stops the process loudly.
//!
//! Only built with the `failpoints` cargo feature; without it
//! [`Failpoints`] is an empty type whose [`Failpoints::trip`] is an inlined
//! `Ok(())`, so release builds pay nothing. With the feature, the spec is
//! read once per process from [`FAILPOINTS_ENV`], and each store counts its
//! own hits (so "the 3rd commit" means the 3rd commit of that store).
//!
//! Spec grammar (whitespace around entries is ignored):
//!
//! ```text
//! spec   = [ entry *( "," entry ) ]
//! entry  = site "=" action "@" nth
//! site   = "store.apply"    ; a write batch, after its writes are staged
//!        / "store.commit"   ; a batch commit (write or expiry batch)
//!        / "store.sync"     ; a background sync of fast mode
//! action = "error"          ; fail as if fjall had returned an I/O error
//!        / "panic"          ; panic, as a buggy verb closure or a fjall
//!                           ; assertion would
//!        / "abort"          ; end the process at once (`std::process::abort`)
//!                           ; right after the site's step succeeded: for
//!                           ; store.commit, after the batch is committed
//!                           ; and before any of its writes is answered
//! nth    = 1*DIGIT          ; the nth time the site is reached, from 1
//! ```
//!
//! e.g. `ATSERVER_FAILPOINTS=store.commit=error@3` fails a store's third
//! batch commit; `store.apply=panic@2` panics in its second batch;
//! `store.commit=abort@2` crashes the process as its second batch becomes
//! durable, the way a power cut or `kill -9` would.

use std::fmt;

/// The environment variable a failpoint spec is read from.
pub const FAILPOINTS_ENV: &str = "ATSERVER_FAILPOINTS";

/// Where in the write actor a failpoint can fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// A write batch whose writes are staged, before its commit.
    Apply,
    /// Any batch commit, right before fjall is asked to commit.
    Commit,
    /// A background sync of fast mode, right before fjall is asked to sync.
    Sync,
}

impl Site {
    /// Number of sites: the size of the per-site tables below.
    #[cfg(any(feature = "failpoints", test))]
    const COUNT: usize = 3;

    #[cfg(any(feature = "failpoints", test))]
    const ALL: [Site; Site::COUNT] = [Site::Apply, Site::Commit, Site::Sync];

    /// The site's name in a spec.
    pub fn name(self) -> &'static str {
        match self {
            Site::Apply => "store.apply",
            Site::Commit => "store.commit",
            Site::Sync => "store.sync",
        }
    }

    #[cfg(any(feature = "failpoints", test))]
    fn index(self) -> usize {
        match self {
            Site::Apply => 0,
            Site::Commit => 1,
            Site::Sync => 2,
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(any(feature = "failpoints", test))]
pub use spec::{Action, Spec, SpecError};

#[cfg(any(feature = "failpoints", test))]
mod spec {
    use std::fmt;

    use super::Site;

    /// What a failpoint does when it fires.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Action {
        Error,
        Panic,
        Abort,
    }

    /// One armed failpoint: `action` on the `nth` hit of its site.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Armed {
        pub action: Action,
        pub nth: u64,
    }

    /// A parsed spec: at most one failpoint per site.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Spec {
        armed: [Option<Armed>; Site::COUNT],
    }

    impl Spec {
        pub fn armed(&self, site: Site) -> Option<Armed> {
            self.armed.get(site.index()).copied().flatten()
        }

        pub fn is_empty(&self) -> bool {
            self.armed.iter().all(Option::is_none)
        }
    }

    /// Why a spec was refused; each names the entry at fault.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum SpecError {
        /// The variable is set but is not UTF-8.
        NotUnicode,
        /// An entry without `=`.
        NoAction(String),
        /// An entry whose site is not one of [`Site`].
        UnknownSite(String),
        /// An entry without `@nth`.
        NoCount(String),
        /// An action other than `error`, `panic` or `abort`.
        UnknownAction(String),
        /// `nth` is not a number of 1 or more.
        BadCount(String),
        /// Two entries for one site.
        SiteTwice(String),
    }

    impl fmt::Display for SpecError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                SpecError::NotUnicode => f.write_str("the spec is not UTF-8"),
                SpecError::NoAction(entry) => write!(f, "{entry:?} has no `=action`"),
                SpecError::UnknownSite(entry) => write!(
                    f,
                    "{entry:?} names no failpoint site (store.apply, store.commit, store.sync)"
                ),
                SpecError::NoCount(entry) => write!(f, "{entry:?} has no `@nth`"),
                SpecError::UnknownAction(entry) => {
                    write!(
                        f,
                        "{entry:?} has an action other than error, panic or abort"
                    )
                }
                SpecError::BadCount(entry) => write!(f, "{entry:?} needs a count of 1 or more"),
                SpecError::SiteTwice(entry) => write!(f, "{entry:?} arms a site armed already"),
            }
        }
    }

    impl std::error::Error for SpecError {}

    /// Parses a spec (grammar in the module docs).
    pub fn parse(text: &str) -> Result<Spec, SpecError> {
        let mut spec = Spec::default();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let owned = || entry.to_string();
            let (site, rest) = entry
                .split_once('=')
                .ok_or_else(|| SpecError::NoAction(owned()))?;
            let site = Site::ALL
                .into_iter()
                .find(|s| s.name() == site.trim())
                .ok_or_else(|| SpecError::UnknownSite(owned()))?;
            let (action, nth) = rest
                .split_once('@')
                .ok_or_else(|| SpecError::NoCount(owned()))?;
            let action = match action.trim() {
                "error" => Action::Error,
                "panic" => Action::Panic,
                "abort" => Action::Abort,
                _ => return Err(SpecError::UnknownAction(owned())),
            };
            let nth = nth
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| SpecError::BadCount(owned()))?;
            let slot = spec
                .armed
                .get_mut(site.index())
                .ok_or_else(|| SpecError::UnknownSite(owned()))?;
            if slot.is_some() {
                return Err(SpecError::SiteTwice(owned()));
            }
            *slot = Some(Armed { action, nth });
        }
        Ok(spec)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn an_empty_spec_arms_nothing() {
            assert!(parse("").expect("empty").is_empty());
            assert!(parse(" , ").expect("blank entries").is_empty());
        }

        #[test]
        fn entries_arm_their_site_with_action_and_count() {
            let spec = parse("store.commit=error@3, store.apply = panic @ 2").expect("valid");
            assert_eq!(
                spec.armed(Site::Commit),
                Some(Armed {
                    action: Action::Error,
                    nth: 3
                })
            );
            assert_eq!(
                spec.armed(Site::Apply),
                Some(Armed {
                    action: Action::Panic,
                    nth: 2
                })
            );
        }

        #[test]
        fn abort_and_the_sync_site_are_understood() {
            let spec = parse("store.commit=abort@2,store.sync=error@1").expect("valid");
            assert_eq!(
                spec.armed(Site::Commit),
                Some(Armed {
                    action: Action::Abort,
                    nth: 2
                })
            );
            assert_eq!(
                spec.armed(Site::Sync),
                Some(Armed {
                    action: Action::Error,
                    nth: 1
                })
            );
        }

        #[test]
        fn malformed_entries_are_refused_by_name() {
            let cases = [
                ("store.commit", SpecError::NoAction("store.commit".into())),
                (
                    "store.fsync=error@1",
                    SpecError::UnknownSite("store.fsync=error@1".into()),
                ),
                (
                    "store.commit=error",
                    SpecError::NoCount("store.commit=error".into()),
                ),
                (
                    "store.commit=crash@1",
                    SpecError::UnknownAction("store.commit=crash@1".into()),
                ),
                (
                    "store.commit=error@0",
                    SpecError::BadCount("store.commit=error@0".into()),
                ),
                (
                    "store.commit=error@x",
                    SpecError::BadCount("store.commit=error@x".into()),
                ),
                (
                    "store.commit=error@1,store.commit=panic@2",
                    SpecError::SiteTwice("store.commit=panic@2".into()),
                ),
            ];
            for (text, expected) in cases {
                assert_eq!(parse(text), Err(expected), "spec {text:?}");
            }
        }
    }
}

/// The failpoints of one store and how often each site was reached.
#[cfg(feature = "failpoints")]
#[derive(Debug, Clone, Default)]
pub struct Failpoints {
    spec: Spec,
    hits: [u64; Site::COUNT],
    /// A site whose armed hit was an abort, due once its step succeeded.
    abort_due: Option<Site>,
}

#[cfg(feature = "failpoints")]
impl Failpoints {
    /// Failpoints armed by `text` (grammar in the module docs).
    pub fn parse(text: &str) -> Result<Failpoints, SpecError> {
        Ok(Failpoints {
            spec: spec::parse(text)?,
            hits: [0; Site::COUNT],
            abort_due: None,
        })
    }

    /// The failpoints of [`FAILPOINTS_ENV`], parsed the first time any
    /// store opens; an unset variable arms none, an invalid one fails every
    /// open (loudly, rather than running a test without its failure).
    pub fn from_env() -> Result<Failpoints, super::StoreError> {
        static FROM_ENV: std::sync::OnceLock<Result<Spec, (String, SpecError)>> =
            std::sync::OnceLock::new();
        let parsed = FROM_ENV.get_or_init(|| {
            let text = match std::env::var(FAILPOINTS_ENV) {
                Ok(text) => text,
                Err(std::env::VarError::NotPresent) => return Ok(Spec::default()),
                Err(std::env::VarError::NotUnicode(raw)) => {
                    return Err((raw.to_string_lossy().into_owned(), SpecError::NotUnicode));
                }
            };
            let spec = spec::parse(&text).map_err(|error| (text.clone(), error))?;
            if !spec.is_empty() {
                tracing::warn!(spec = %text, "failpoints armed: writes will fail on purpose");
            }
            Ok(spec)
        });
        match parsed {
            Ok(spec) => Ok(Failpoints {
                spec: spec.clone(),
                hits: [0; Site::COUNT],
                abort_due: None,
            }),
            Err((spec, source)) => Err(super::StoreError::FailpointSpec {
                spec: spec.clone(),
                source: source.clone(),
            }),
        }
    }

    /// Counts a hit of `site` and fires its failpoint if this is the armed
    /// hit: an injected fjall I/O error, or a panic. An abort is only
    /// remembered: it fires in [`Failpoints::passed`].
    pub fn trip(&mut self, site: Site) -> Result<(), fjall::Error> {
        let Some(hits) = self.hits.get_mut(site.index()) else {
            return Ok(());
        };
        *hits = hits.saturating_add(1);
        match self.spec.armed(site) {
            Some(armed) if armed.nth == *hits => match armed.action {
                Action::Error => Err(fjall::Error::Io(std::io::Error::other(format!(
                    "failpoint {site}=error@{}",
                    armed.nth
                )))),
                // The one deliberate panic in library code: it stands in for
                // a panicking verb closure or fjall assertion, so the tests
                // can prove the actor survives one. Built only with the
                // `failpoints` feature, fired only when the spec asks.
                #[allow(clippy::panic)]
                Action::Panic => panic!("failpoint {site}=panic@{}", armed.nth),
                Action::Abort => {
                    self.abort_due = Some(site);
                    Ok(())
                }
            },
            _ => Ok(()),
        }
    }

    /// The step of `site` succeeded: if its hit was an armed abort, ends
    /// the process now, before anything else (the replies of a committed
    /// batch, say) can happen.
    pub fn passed(&mut self, site: Site) {
        if self.abort_due == Some(site) {
            let nth = self.spec.armed(site).map_or(0, |armed| armed.nth);
            // The log goes to stderr unbuffered, so this line is out first.
            tracing::error!("failpoint {site}=abort@{nth}: aborting the process");
            // The one deliberate crash in library code: it stands in for a
            // power cut or `kill -9` at the worst moment, so the tests can
            // prove a restart keeps exactly what was committed. Built only
            // with the `failpoints` feature, fired only when the spec asks.
            std::process::abort();
        }
    }
}

/// Without the `failpoints` feature: nothing is armed, nothing is counted.
#[cfg(not(feature = "failpoints"))]
#[derive(Debug, Clone, Copy, Default)]
pub struct Failpoints;

#[cfg(not(feature = "failpoints"))]
impl Failpoints {
    #[inline(always)]
    pub fn from_env() -> Result<Failpoints, super::StoreError> {
        Ok(Failpoints)
    }

    #[inline(always)]
    pub fn trip(&mut self, _site: Site) -> Result<(), fjall::Error> {
        Ok(())
    }

    #[inline(always)]
    pub fn passed(&mut self, _site: Site) {}
}
