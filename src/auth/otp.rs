//! One-time passcodes (`otp:get`), the semi-permanent passcode (`otp:put`)
//! and the check an unauthenticated `enroll:request` passes (auth.md §5).
//!
//! Records, none of them committed (they never sync to clients):
//! - `private:<otp lower-case>.__otp@alice`, value the OTP, expiring after
//!   the ttl asked for (default [`OTP_TTL_MS_DEFAULT`]); deleted by the
//!   first check that names it, valid or not: single use.
//! - `private:spp.__otp@alice`, value the SPP, expiring only if a ttl was
//!   given; one at a time, reusable. The legacy `private:spp@alice` is read
//!   when it is absent, and removed when a new SPP is stored.
//!
//! Deliberately not read: the reference's legacy OTP key
//! `private:<passcode>@alice`. This server never writes it, and the name
//! is chosen by the unauthenticated caller: honouring it would make any
//! expiring `private:<word>@alice` record an enrollment passcode, and a
//! guess naming it would delete it.
//!
//! Invalid passcodes are answered late, after a delay that grows with each
//! one ([`PasscodeThrottle`]); the delay and its series are kept per atSign,
//! where the reference keeps one series for the whole server: one hosted
//! atSign under attack must not slow the enrollments of another.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::challenge::{RandomSource, RandomnessFailed};
use super::constant_time_eq;
use crate::clock::Clock;
use crate::error::{AtCode, AtError};
use crate::limits::{
    OTP_TTL_MS_DEFAULT, OTP_TTL_MS_MAX, PASSCODE_CHARS_MAX, PASSCODE_CHECKS_PER_ATSIGN_MAX,
    PASSCODE_DELAY_BASE_MS, PASSCODE_DELAY_MAX_MS, PASSCODE_SERIES_RESET_MS, TIME_TO_LIVE_MS_MAX,
};
use crate::storage::actor::MutateFn;
use crate::storage::{CommitOp, KeyWrite, Mutation, StoredRecord, TenantStore, WriteRequest};

/// The characters of an OTP: upper-case letters and digits but `0` and `O`,
/// which a person reading the code off a screen confuses.
pub const OTP_ALPHABET: &[u8; 34] = b"123456789ABCDEFGHIJKLMNPQRSTUVWXYZ";

/// Characters of an OTP `otp:get` issues: about 1.3 billion codes with a
/// digit.
pub const OTP_CHARS: usize = 6;

/// Shortest passcode: the grammar's `\w{6,}`.
pub const PASSCODE_CHARS_MIN: usize = 6;

/// Random bytes drawn per attempt at an OTP: enough that six of them are
/// almost always below [`ACCEPT_BELOW`].
const DRAW_BYTES: usize = 32;

/// Bytes at or above this are thrown away, so that every character of
/// [`OTP_ALPHABET`] is equally likely (238 is the largest multiple of 34
/// that a byte holds): rejection, not modulo bias.
const ACCEPT_BELOW: u8 = (256 / OTP_ALPHABET.len() * OTP_ALPHABET.len()) as u8;

/// Draws before generation gives up. An attempt fails only when its code
/// has no digit (about 16 %) or its bytes had too few below
/// [`ACCEPT_BELOW`]; 64 failures in a row (odds near 10⁻⁵¹) say the random
/// source is broken, not unlucky.
const DRAWS_MAX: usize = 64;

const _: () = assert!(ACCEPT_BELOW as usize % OTP_ALPHABET.len() == 0);
const _: () = assert!(OTP_CHARS <= DRAW_BYTES && PASSCODE_CHARS_MIN <= OTP_CHARS);
const _: () = assert!(PASSCODE_CHARS_MIN <= PASSCODE_CHARS_MAX);

/// A new OTP from `rng`: [`OTP_CHARS`] characters of [`OTP_ALPHABET`], at
/// least one a digit, each valid code equally likely.
pub fn generate(rng: &impl RandomSource) -> Result<String, RandomnessFailed> {
    let mut bytes = [0u8; DRAW_BYTES];
    for _ in 0..DRAWS_MAX {
        rng.fill(&mut bytes)?;
        let code: String = bytes
            .iter()
            .filter(|b| **b < ACCEPT_BELOW)
            .take(OTP_CHARS)
            .map(|b| char::from(OTP_ALPHABET[usize::from(*b) % OTP_ALPHABET.len()]))
            .collect();
        if code.len() == OTP_CHARS && code.bytes().any(|c| c.is_ascii_digit()) {
            return Ok(code);
        }
    }
    Err(RandomnessFailed)
}

/// `private:<passcode lower-case>.__otp@alice`, where an OTP is stored.
pub fn otp_key(passcode: &str, atsign: &str) -> String {
    format!("private:{}.__otp{atsign}", passcode.to_ascii_lowercase())
}

/// `private:spp.__otp@alice`, where the SPP is stored.
pub fn spp_key(atsign: &str) -> String {
    format!("private:spp.__otp{atsign}")
}

/// `private:spp@alice`, where the reference stored the SPP before the
/// `__otp` namespace.
pub fn legacy_spp_key(atsign: &str) -> String {
    format!("private:spp{atsign}")
}

/// Whether `passcode` could be a passcode at all: the grammar's word
/// characters, [`PASSCODE_CHARS_MIN`] to [`PASSCODE_CHARS_MAX`] of them.
pub fn is_well_formed(passcode: &str) -> bool {
    (PASSCODE_CHARS_MIN..=PASSCODE_CHARS_MAX).contains(&passcode.len())
        && passcode
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Issues an OTP (`otp:get[:ttl:<ms>]`) in `store` at `now_ms`: stored,
/// not committed, expiring after `ttl_ms` (default
/// [`OTP_TTL_MS_DEFAULT`]); resolves once durable. A ttl of 0 or above
/// [`OTP_TTL_MS_MAX`] is refused (AT0022); a failing random source is
/// AT0010.
pub async fn issue(
    store: &TenantStore,
    rng: &impl RandomSource,
    ttl_ms: Option<u64>,
    now_ms: i64,
) -> Result<String, AtError> {
    let ttl = match ttl_ms {
        None => OTP_TTL_MS_DEFAULT,
        Some(ms) if (1..=OTP_TTL_MS_MAX).contains(&ms) => ms,
        Some(_) => {
            return Err(AtError::new(
                AtCode::IllegalArguments,
                format!(
                    "otp:get:ttl:<ms> takes 1 to {OTP_TTL_MS_MAX} milliseconds (OTP_TTL_MS_MAX)"
                ),
            ));
        }
    };
    let otp = generate(rng)?;
    let record = passcode_record(&otp, store.atsign(), Some(ttl), now_ms);
    store
        .write(otp_key(&otp, store.atsign()), false, move |_| {
            Ok(Mutation::Put(Box::new(record), CommitOp::Update))
        })
        .await?;
    Ok(otp)
}

/// Stores `spp` as the semi-permanent passcode (`otp:put:<spp>[:ttl:<ms>]`)
/// at `now_ms`, replacing any earlier one (the legacy key included, in the
/// same write); not committed. No ttl, or 0 as for any key, means it never
/// expires. A malformed or too long SPP, or a ttl beyond
/// [`TIME_TO_LIVE_MS_MAX`], is refused (AT0022).
pub async fn put_spp(
    store: &TenantStore,
    spp: &str,
    ttl_ms: Option<u64>,
    now_ms: i64,
) -> Result<(), AtError> {
    if !is_well_formed(spp) {
        return Err(AtError::new(
            AtCode::IllegalArguments,
            format!(
                "otp:put:<passcode> takes {PASSCODE_CHARS_MIN} to {PASSCODE_CHARS_MAX} word characters (PASSCODE_CHARS_MAX)"
            ),
        ));
    }
    let ttl = match ttl_ms {
        None | Some(0) => None,
        Some(ms) if ms <= TIME_TO_LIVE_MS_MAX.unsigned_abs() => Some(ms),
        Some(_) => {
            return Err(AtError::new(
                AtCode::IllegalArguments,
                format!(
                    "otp:put ttl takes at most {TIME_TO_LIVE_MS_MAX} milliseconds (TIME_TO_LIVE_MS_MAX)"
                ),
            ));
        }
    };
    let atsign = store.atsign();
    let record = passcode_record(spp, atsign, ttl, now_ms);
    let put: MutateFn = Box::new(move |_| Ok(Mutation::Put(Box::new(record), CommitOp::Update)));
    let write = KeyWrite::new(spp_key(atsign), false, put);
    let request = WriteRequest {
        request_bytes: write.key.len() + spp.len(),
        write,
        companion: Some(KeyWrite::new(
            legacy_spp_key(atsign),
            false,
            delete_if_present(),
        )),
    };
    store.submit_request(request).await?.outcome().await?;
    Ok(())
}

/// A passcode's record: written by the atSign at `now_ms`, expiring after
/// `ttl_ms` if given.
fn passcode_record(value: &str, atsign: &str, ttl_ms: Option<u64>, now_ms: i64) -> StoredRecord {
    let mut record = StoredRecord::written_by(Some(value.to_string()), atsign, now_ms);
    let ttl = ttl_ms.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX));
    record.meta.ttl = ttl;
    record.meta.expires_at = ttl.map(|ms| now_ms.saturating_add(ms));
    record
}

fn delete_if_present() -> MutateFn {
    Box::new(|old| {
        Ok(match old {
            Some(_) => Mutation::Delete,
            None => Mutation::Unchanged,
        })
    })
}

/// The answer to an invalid (or unchecked) passcode, as the reference
/// words it.
fn invalid_passcode() -> AtError {
    AtError::new(
        AtCode::InternalServerException,
        "invalid otp. Cannot process enroll request",
    )
}

/// Checks the passcode of an unauthenticated `enroll:request` for `atsign`
/// (whose store is `tenant_store`): the SPP first, compared
/// case-insensitively in constant time, then an OTP, which this check
/// consumes whether it is still valid or not. `Ok` for a valid one.
///
/// Otherwise AT0011 `invalid otp. Cannot process enroll request`, after
/// the atSign's delay (slept on `clock`). A passcode that is not
/// well-formed ([`is_well_formed`]) is invalid without a store lookup.
/// When [`PASSCODE_CHECKS_PER_ATSIGN_MAX`] checks of the atSign are under
/// way or waiting, the same error comes at once and the passcode is not
/// looked at. A storage failure is reported as such (AT0002), counted as
/// neither valid nor invalid.
pub async fn check_passcode<C: Clock>(
    tenant_store: &TenantStore,
    atsign: &str,
    throttle: &PasscodeThrottle,
    clock: &C,
    passcode: &str,
) -> Result<(), AtError> {
    debug_assert_eq!(tenant_store.atsign(), atsign, "the store of the atSign");
    let Some(check) = throttle.admit(clock.now()) else {
        // Debug, not warn: a flood would otherwise flood the log. The
        // checks that do run are logged, at most a few per delay.
        tracing::debug!(
            atsign,
            "passcode refused unchecked: too many checks waiting"
        );
        return Err(invalid_passcode());
    };
    let now_ms = crate::storage::actor::now_ms();
    let valid =
        is_well_formed(passcode) && matches_stored(tenant_store, atsign, passcode, now_ms).await?;
    if valid {
        check.valid();
        return Ok(());
    }
    let delay = check.invalid(clock.now());
    tracing::warn!(
        atsign,
        delay_ms = delay.as_millis() as u64,
        "invalid enrollment passcode"
    );
    clock.sleep(delay).await;
    Err(invalid_passcode())
}

/// Whether `passcode` (well-formed) is the atSign's live SPP or one of its
/// live OTPs; an OTP it names is deleted either way.
async fn matches_stored(
    store: &TenantStore,
    atsign: &str,
    passcode: &str,
    now_ms: i64,
) -> Result<bool, AtError> {
    let spp = match live_value(store, &spp_key(atsign), now_ms)? {
        Some(spp) => Some(spp),
        None => live_value(store, &legacy_spp_key(atsign), now_ms)?,
    };
    let presented = passcode.to_ascii_lowercase();
    if spp.is_some_and(|spp| {
        constant_time_eq(spp.to_ascii_lowercase().as_bytes(), presented.as_bytes())
    }) {
        return Ok(true);
    }
    consume_otp(store, otp_key(&presented, atsign), now_ms).await
}

/// The value of `key` if it is live at `now_ms`.
fn live_value(store: &TenantStore, key: &str, now_ms: i64) -> Result<Option<String>, AtError> {
    let value = store.read(key, |record| {
        record
            .is_active(now_ms)
            .then(|| record.value_str().map(str::to_string))
            .flatten()
    })?;
    Ok(value.flatten())
}

/// Deletes the OTP record `key`, if there is one, and says whether it was
/// live at `now_ms`. Decided on the write actor, from the record the delete
/// removes: of two checks naming one OTP at once, only one sees it.
async fn consume_otp(store: &TenantStore, key: String, now_ms: i64) -> Result<bool, AtError> {
    // Most wrong guesses name no record: answered by a read, without a
    // write through the actor.
    if store.read(&key, |_| ())?.is_none() {
        return Ok(false);
    }
    let live = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&live);
    store
        .write(key, false, move |old| {
            Ok(match old {
                Some(record) => {
                    seen.store(record.is_active(now_ms), Ordering::Release);
                    Mutation::Delete
                }
                None => Mutation::Unchanged,
            })
        })
        .await?;
    Ok(live.load(Ordering::Acquire))
}

/// The delay before answering the `invalid_in_series`-th invalid passcode
/// of a series: [`PASSCODE_DELAY_BASE_MS`] times 1, 2, 3, 5, 8, 13, 21, 34,
/// 55…, each the sum of the two before, up to [`PASSCODE_DELAY_MAX_MS`].
pub fn passcode_delay(invalid_in_series: u32) -> Duration {
    if invalid_in_series == 0 {
        return Duration::ZERO;
    }
    let (mut before, mut delay) = (PASSCODE_DELAY_BASE_MS, PASSCODE_DELAY_BASE_MS);
    // Stops at the cap, so at most a dozen turns whatever the count.
    for _ in 1..invalid_in_series {
        if delay >= PASSCODE_DELAY_MAX_MS {
            break;
        }
        (before, delay) = (delay, before.saturating_add(delay));
    }
    Duration::from_millis(delay.min(PASSCODE_DELAY_MAX_MS))
}

/// Invalid passcodes presented for one atSign, the delay the next one
/// waits, and the checks under way or waiting (at most
/// [`PASSCODE_CHECKS_PER_ATSIGN_MAX`]).
///
/// Driven by the `Instant`s it is given (a clock's `now()`), so tests move
/// time by hand.
#[derive(Debug)]
pub struct PasscodeThrottle {
    state: Mutex<ThrottleState>,
}

#[derive(Debug)]
struct ThrottleState {
    /// Invalid passcodes since the series last started; the next one waits
    /// [`passcode_delay`] of this plus one.
    invalid_in_series: u32,
    /// When the latest invalid passcode of the series arrived.
    last_invalid: Option<Instant>,
    /// One per check that may run at once.
    slots: [Slot; PASSCODE_CHECKS_PER_ATSIGN_MAX],
}

/// What one of the checks an atSign may run at once is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    /// A passcode is being looked up.
    Checking,
    /// An invalid passcode's delay runs until then. Kept by time, not by
    /// the task that sleeps: a connection that closes early (its client
    /// knows a late answer is a wrong guess) does not free the slot early.
    WaitingUntil(Instant),
}

impl Slot {
    fn is_free(self, now: Instant) -> bool {
        match self {
            Slot::Free => true,
            Slot::Checking => false,
            Slot::WaitingUntil(until) => now >= until,
        }
    }
}

impl Default for PasscodeThrottle {
    fn default() -> Self {
        PasscodeThrottle {
            state: Mutex::new(ThrottleState {
                invalid_in_series: 0,
                last_invalid: None,
                slots: [Slot::Free; PASSCODE_CHECKS_PER_ATSIGN_MAX],
            }),
        }
    }
}

impl PasscodeThrottle {
    /// A slot for a passcode that arrived at `now`, or `None` when every
    /// slot is checking or waiting: then the passcode must be answered as
    /// invalid without being looked at.
    pub fn admit(&self, now: Instant) -> Option<PasscodeCheck<'_>> {
        let mut state = self.lock();
        let (index, slot) = state
            .slots
            .iter_mut()
            .enumerate()
            .find(|(_, slot)| slot.is_free(now))?;
        *slot = Slot::Checking;
        Some(PasscodeCheck {
            throttle: self,
            index,
            arrived: now,
            settled: false,
        })
    }

    /// Checks under way or waiting out their delay at `now`.
    pub fn busy(&self, now: Instant) -> usize {
        self.lock()
            .slots
            .iter()
            .filter(|slot| !slot.is_free(now))
            .count()
    }

    /// The state holds plain numbers, consistent after every statement: a
    /// panic elsewhere while it was held leaves nothing to repair.
    fn lock(&self) -> MutexGuard<'_, ThrottleState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_slot(state: &mut ThrottleState, index: usize, to: Slot) {
        if let Some(slot) = state.slots.get_mut(index) {
            *slot = to;
        }
    }
}

/// One admitted passcode check, holding its slot. Settle it with
/// [`PasscodeCheck::valid`] or [`PasscodeCheck::invalid`]; dropped
/// unsettled (the check failed or was cancelled), it frees the slot and
/// counts nothing.
#[must_use = "a check holds a slot until it is settled"]
pub struct PasscodeCheck<'a> {
    throttle: &'a PasscodeThrottle,
    index: usize,
    arrived: Instant,
    settled: bool,
}

impl PasscodeCheck<'_> {
    /// The passcode was valid: frees the slot, and starts the series afresh
    /// if it arrived [`PASSCODE_SERIES_RESET_MS`] or more after the last
    /// invalid one.
    pub fn valid(mut self) {
        let mut state = self.throttle.lock();
        let quiet = Duration::from_millis(PASSCODE_SERIES_RESET_MS);
        if state
            .last_invalid
            .is_some_and(|last| self.arrived.saturating_duration_since(last) >= quiet)
        {
            state.invalid_in_series = 0;
            state.last_invalid = None;
        }
        PasscodeThrottle::set_slot(&mut state, self.index, Slot::Free);
        self.settled = true;
    }

    /// The passcode was invalid, found so at `now`: counts it and returns
    /// the delay to wait before answering. The slot stays taken until `now`
    /// plus that delay.
    pub fn invalid(mut self, now: Instant) -> Duration {
        let mut state = self.throttle.lock();
        state.invalid_in_series = state.invalid_in_series.saturating_add(1);
        let delay = passcode_delay(state.invalid_in_series);
        let arrived = self.arrived;
        state.last_invalid = Some(state.last_invalid.map_or(arrived, |last| last.max(arrived)));
        PasscodeThrottle::set_slot(&mut state, self.index, Slot::WaitingUntil(now + delay));
        self.settled = true;
        delay
    }
}

impl Drop for PasscodeCheck<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let mut state = self.throttle.lock();
            PasscodeThrottle::set_slot(&mut state, self.index, Slot::Free);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use futures_lite::future::block_on;
    use proptest::prelude::*;

    use super::*;
    use crate::storage::actor::now_ms;

    /// Bytes from a script, repeated: drives generation through chosen
    /// draws.
    struct Scripted {
        bytes: Vec<u8>,
        next: Cell<usize>,
    }

    impl Scripted {
        fn new(bytes: Vec<u8>) -> Scripted {
            Scripted {
                bytes,
                next: Cell::new(0),
            }
        }
    }

    impl RandomSource for Scripted {
        fn fill(&self, dest: &mut [u8]) -> Result<(), RandomnessFailed> {
            for b in dest {
                let i = self.next.get();
                *b = self
                    .bytes
                    .get(i % self.bytes.len().max(1))
                    .copied()
                    .unwrap_or(0);
                self.next.set(i + 1);
            }
            Ok(())
        }
    }

    struct Broken;

    impl RandomSource for Broken {
        fn fill(&self, _dest: &mut [u8]) -> Result<(), RandomnessFailed> {
            Err(RandomnessFailed)
        }
    }

    fn follows_the_rules(otp: &str) -> bool {
        otp.len() == OTP_CHARS
            && otp.bytes().all(|c| OTP_ALPHABET.contains(&c))
            && otp.bytes().any(|c| c.is_ascii_digit())
            && !otp.contains(['0', 'O'])
    }

    #[test]
    fn the_alphabet_is_upper_case_letters_and_digits_without_zero_and_o() {
        assert_eq!(OTP_ALPHABET.len(), 26 + 10 - 2);
        assert!(
            OTP_ALPHABET
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
        assert!(!OTP_ALPHABET.contains(&b'0') && !OTP_ALPHABET.contains(&b'O'));
        assert_eq!(ACCEPT_BELOW, 238);
    }

    #[test]
    fn system_random_codes_follow_the_rules_and_differ() {
        let rng = ring::rand::SystemRandom::new();
        let codes: Vec<String> = (0..10_000)
            .map(|_| generate(&rng).expect("random"))
            .collect();
        assert!(codes.iter().all(|c| follows_the_rules(c)), "{codes:?}");
        let distinct: std::collections::HashSet<&String> = codes.iter().collect();
        assert!(distinct.len() > 9_990, "codes repeat: {}", distinct.len());
        // Every character is drawn (34 of them in 60,000 draws).
        let seen: std::collections::HashSet<u8> = codes.iter().flat_map(|c| c.bytes()).collect();
        assert_eq!(seen.len(), OTP_ALPHABET.len());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Whatever bytes the source gives, a code that comes out follows
        /// the rules, and it is made of the first accepted bytes of a draw
        /// with a digit.
        #[test]
        fn any_draw_yields_a_code_that_follows_the_rules(bytes in proptest::collection::vec(any::<u8>(), 1..96)) {
            if let Ok(code) = generate(&Scripted::new(bytes)) {
                prop_assert!(follows_the_rules(&code), "{}", code);
            }
        }
    }

    #[test]
    fn bytes_above_the_last_multiple_are_rejected_not_folded() {
        // 238..=255 would fold onto the first 18 characters: skipped.
        let mut draw = vec![238, 255, 0, 33, 34, 9, 250, 10, 11];
        draw.resize(DRAW_BYTES, 0);
        let code = generate(&Scripted::new(draw)).expect("a code");
        assert_eq!(code, "1Z1ABC");
    }

    #[test]
    fn a_code_without_a_digit_is_drawn_again() {
        // First draw: six letters; second: letters and a digit.
        let mut script = vec![9u8; DRAW_BYTES];
        let mut second = vec![9u8, 9, 9, 9, 9, 0];
        second.resize(DRAW_BYTES, 9);
        script.extend(second);
        assert_eq!(generate(&Scripted::new(script)).expect("a code"), "AAAAA1");
    }

    #[test]
    fn a_source_that_is_broken_or_never_usable_fails() {
        assert_eq!(generate(&Broken), Err(RandomnessFailed));
        // Only rejected bytes, forever.
        assert_eq!(generate(&Scripted::new(vec![255])), Err(RandomnessFailed));
        // Only letters, forever.
        assert_eq!(generate(&Scripted::new(vec![20])), Err(RandomnessFailed));
    }

    #[test]
    fn passcodes_are_six_to_the_maximum_word_characters() {
        assert!(is_well_formed("ABC123"));
        assert!(is_well_formed("abc_12"));
        assert!(is_well_formed(&"a".repeat(PASSCODE_CHARS_MAX)));
        assert!(!is_well_formed("ABC12"));
        assert!(!is_well_formed(&"a".repeat(PASSCODE_CHARS_MAX + 1)));
        assert!(!is_well_formed("abc.123"));
        assert!(!is_well_formed("abc12é"));
        assert!(!is_well_formed(""));
    }

    #[test]
    fn the_delays_follow_the_reference_series_and_stop_at_55_s() {
        let seconds: Vec<u64> = (1..=12).map(|n| passcode_delay(n).as_secs()).collect();
        assert_eq!(seconds, [1, 2, 3, 5, 8, 13, 21, 34, 55, 55, 55, 55]);
        assert_eq!(
            passcode_delay(u32::MAX),
            Duration::from_millis(PASSCODE_DELAY_MAX_MS)
        );
        assert_eq!(passcode_delay(0), Duration::ZERO);
    }

    fn invalid_at(throttle: &PasscodeThrottle, at: Instant) -> Duration {
        throttle.admit(at).expect("a slot").invalid(at)
    }

    #[test]
    fn the_series_resets_only_on_a_valid_passcode_55_s_after_the_last_invalid() {
        let throttle = PasscodeThrottle::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(invalid_at(&throttle, t0), s(1));
        assert_eq!(invalid_at(&throttle, t0 + s(1)), s(2));
        assert_eq!(invalid_at(&throttle, t0 + s(3)), s(3));
        // A valid passcode soon after leaves the series running.
        throttle.admit(t0 + s(10)).expect("a slot").valid();
        assert_eq!(invalid_at(&throttle, t0 + s(10)), s(5));
        // Time alone resets nothing.
        assert_eq!(invalid_at(&throttle, t0 + s(1_000)), s(8));
        // A valid one 54.999 s after the last invalid: still running.
        throttle
            .admit(t0 + s(1_055) - Duration::from_millis(1))
            .expect("a slot")
            .valid();
        assert_eq!(invalid_at(&throttle, t0 + s(1_060)), s(13));
        // A valid one exactly 55 s after: the series starts again.
        throttle.admit(t0 + s(1_115)).expect("a slot").valid();
        assert_eq!(invalid_at(&throttle, t0 + s(1_116)), s(1));
    }

    #[test]
    fn checks_beyond_the_bound_are_refused_until_a_delay_has_passed() {
        let throttle = PasscodeThrottle::default();
        let t0 = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..PASSCODE_CHECKS_PER_ATSIGN_MAX {
            delays.push(invalid_at(&throttle, t0));
        }
        assert_eq!(throttle.busy(t0), PASSCODE_CHECKS_PER_ATSIGN_MAX);
        assert!(throttle.admit(t0).is_none(), "every slot is waiting");
        // A closed connection frees nothing: the slots are kept by time.
        // The first delay (1 s) ends first and frees its slot.
        let first = t0 + delays[0];
        assert!(throttle.admit(first - Duration::from_millis(1)).is_none());
        let check = throttle.admit(first).expect("the first slot is free again");
        assert!(throttle.admit(first).is_none());
        // A check dropped unsettled (cancelled, or the store failed)
        // frees its slot and counts nothing.
        drop(check);
        assert_eq!(throttle.busy(first), PASSCODE_CHECKS_PER_ATSIGN_MAX - 1);
        let next = invalid_at(&throttle, first);
        assert_eq!(
            next,
            passcode_delay(PASSCODE_CHECKS_PER_ATSIGN_MAX as u32 + 1)
        );
    }

    #[test]
    fn checks_under_way_hold_their_slots() {
        let throttle = PasscodeThrottle::default();
        let t0 = Instant::now();
        let held: Vec<PasscodeCheck<'_>> = (0..PASSCODE_CHECKS_PER_ATSIGN_MAX)
            .map(|_| throttle.admit(t0).expect("a slot"))
            .collect();
        assert!(throttle.admit(t0 + Duration::from_secs(3_600)).is_none());
        for check in held {
            check.valid();
        }
        assert_eq!(throttle.busy(t0), 0);
    }

    /// A clock whose time moves by hand and which records its sleeps.
    #[derive(Clone)]
    struct HandClock {
        now: Arc<Mutex<Instant>>,
        slept: Arc<Mutex<Vec<Duration>>>,
    }

    impl HandClock {
        fn new() -> HandClock {
            HandClock {
                now: Arc::new(Mutex::new(Instant::now())),
                slept: Arc::default(),
            }
        }

        fn advance(&self, by: Duration) {
            let mut now = self.now.lock().expect("clock");
            *now += by;
        }

        fn slept(&self) -> Vec<Duration> {
            self.slept.lock().expect("clock").clone()
        }
    }

    impl Clock for HandClock {
        type Sleep = std::future::Ready<()>;

        fn sleep(&self, duration: Duration) -> Self::Sleep {
            self.slept.lock().expect("clock").push(duration);
            self.advance(duration);
            std::future::ready(())
        }

        fn now(&self) -> Instant {
            *self.now.lock().expect("clock")
        }
    }

    /// What a hosted atSign holds for passcodes (`context::Tenant` is a
    /// layer above, so the tests build the parts they need).
    struct TestTenant {
        atsign: String,
        store: crate::storage::TenantStore,
        passcodes: PasscodeThrottle,
    }

    /// One store for the tests of this module, each test on its own atSign.
    fn shared_store() -> &'static crate::storage::Store {
        static STORE: std::sync::OnceLock<(tempfile::TempDir, crate::storage::Store)> =
            std::sync::OnceLock::new();
        let (_, store) = STORE.get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = crate::storage::Store::open(
                dir.path(),
                crate::storage::Durability::Fast,
                crate::health::FatalSink::log_only(),
            )
            .expect("store");
            (dir, store)
        });
        store
    }

    struct Fixture {
        tenant: Arc<TestTenant>,
        clock: HandClock,
    }

    impl Fixture {
        fn new(atsign: &str) -> Fixture {
            Fixture {
                tenant: Arc::new(TestTenant {
                    atsign: atsign.to_string(),
                    store: shared_store().tenant(atsign),
                    passcodes: PasscodeThrottle::default(),
                }),
                clock: HandClock::new(),
            }
        }

        fn check(&self, passcode: &str) -> Result<(), AtError> {
            let t = &self.tenant;
            block_on(check_passcode(
                &t.store,
                &t.atsign,
                &t.passcodes,
                &self.clock,
                passcode,
            ))
        }

        fn issue(&self, ttl_ms: Option<u64>, at_ms: i64) -> String {
            let rng = ring::rand::SystemRandom::new();
            block_on(issue(&self.tenant.store, &rng, ttl_ms, at_ms)).expect("issued")
        }

        fn put_spp(&self, spp: &str, ttl_ms: Option<u64>, at_ms: i64) {
            block_on(put_spp(&self.tenant.store, spp, ttl_ms, at_ms)).expect("stored");
        }

        fn record(&self, key: &str) -> Option<StoredRecord> {
            self.tenant.store.get(key).expect("read")
        }

        fn plant(&self, key: &str, value: &str) {
            let record =
                StoredRecord::written_by(Some(value.into()), &self.tenant.atsign, now_ms());
            block_on(self.tenant.store.write(key.to_string(), false, move |_| {
                Ok(Mutation::Put(Box::new(record), CommitOp::Update))
            }))
            .expect("planted");
        }
    }

    fn is_invalid_otp(result: Result<(), AtError>) -> bool {
        matches!(result, Err(e) if e.code == AtCode::InternalServerException
            && e.message == "invalid otp. Cannot process enroll request")
    }

    #[test]
    fn an_issued_otp_is_stored_lower_case_uncommitted_with_its_expiry() {
        let f = Fixture::new("@otp-stored");
        let at = now_ms();
        let otp = f.issue(None, at);
        assert!(follows_the_rules(&otp));
        let key = format!("private:{}.__otp@otp-stored", otp.to_ascii_lowercase());
        let record = f.record(&key).expect("stored");
        assert_eq!(record.value.as_deref(), Some(otp.as_str()));
        assert_eq!(record.meta.expires_at, Some(at + OTP_TTL_MS_DEFAULT as i64));
        assert_eq!(record.meta.ttl, Some(OTP_TTL_MS_DEFAULT as i64));
        assert_eq!(
            f.tenant.store.last_commit_id().expect("read"),
            None,
            "not committed"
        );
        let custom = f.issue(Some(90_000), at);
        let record = f.record(&otp_key(&custom, "@otp-stored")).expect("stored");
        assert_eq!(record.meta.expires_at, Some(at + 90_000));
    }

    #[test]
    fn an_otp_ttl_of_zero_or_beyond_the_maximum_is_refused() {
        let f = Fixture::new("@otp-ttl");
        let rng = ring::rand::SystemRandom::new();
        for ttl in [0, OTP_TTL_MS_MAX + 1, u64::MAX] {
            let error =
                block_on(issue(&f.tenant.store, &rng, Some(ttl), now_ms())).expect_err("refused");
            assert_eq!(error.code, AtCode::IllegalArguments, "{ttl}");
        }
        assert!(block_on(issue(&f.tenant.store, &rng, Some(OTP_TTL_MS_MAX), now_ms())).is_ok());
    }

    #[test]
    fn a_failing_random_source_issues_nothing() {
        let f = Fixture::new("@otp-broken");
        let error = block_on(issue(&f.tenant.store, &Broken, None, now_ms())).expect_err("refused");
        assert_eq!(error.code, AtCode::InternalServerError);
    }

    #[test]
    fn an_otp_is_valid_once_in_any_case() {
        let f = Fixture::new("@otp-once");
        let otp = f.issue(None, now_ms());
        assert_eq!(f.check(&otp.to_ascii_lowercase()), Ok(()));
        assert!(f.record(&otp_key(&otp, "@otp-once")).is_none(), "consumed");
        assert!(
            f.clock.slept().is_empty(),
            "a valid passcode waits for nothing"
        );
        assert!(is_invalid_otp(f.check(&otp)));
        assert_eq!(f.clock.slept(), [Duration::from_secs(1)]);
    }

    #[test]
    fn an_expired_otp_is_invalid_and_deleted() {
        let f = Fixture::new("@otp-expired");
        let otp = f.issue(Some(1_000), now_ms() - 60_000);
        assert!(f.record(&otp_key(&otp, "@otp-expired")).is_some());
        assert!(is_invalid_otp(f.check(&otp)));
        assert!(
            f.record(&otp_key(&otp, "@otp-expired")).is_none(),
            "deleted anyway"
        );
    }

    #[test]
    fn the_spp_is_reusable_case_insensitive_and_replaced_by_the_next() {
        let f = Fixture::new("@otp-spp");
        f.put_spp("AbC123", None, now_ms());
        let record = f.record("private:spp.__otp@otp-spp").expect("stored");
        assert_eq!(record.value.as_deref(), Some("AbC123"));
        assert_eq!(record.meta.expires_at, None);
        for presented in ["AbC123", "abc123", "ABC123", "abc123"] {
            assert_eq!(f.check(presented), Ok(()), "{presented}");
        }
        assert!(is_invalid_otp(f.check("abc124")));
        f.put_spp("XYZ789", Some(0), now_ms());
        assert!(is_invalid_otp(f.check("abc123")), "the old one is gone");
        assert_eq!(f.check("xyz789"), Ok(()));
    }

    #[test]
    fn an_expired_spp_is_invalid() {
        let f = Fixture::new("@otp-spp-expired");
        f.put_spp("ABC123", Some(1_000), now_ms() - 60_000);
        assert!(is_invalid_otp(f.check("ABC123")));
        f.put_spp("ABC123", Some(3_600_000), now_ms());
        assert_eq!(f.check("ABC123"), Ok(()));
    }

    #[test]
    fn the_legacy_spp_is_read_when_there_is_no_new_one_and_replaced_by_one() {
        let f = Fixture::new("@otp-legacy");
        f.plant("private:spp@otp-legacy", "OLD123");
        assert_eq!(f.check("old123"), Ok(()));
        f.put_spp("NEW123", None, now_ms());
        assert!(
            f.record("private:spp@otp-legacy").is_none(),
            "removed with the put"
        );
        assert!(is_invalid_otp(f.check("OLD123")));
    }

    #[test]
    fn a_guess_never_names_another_private_record() {
        let f = Fixture::new("@otp-private");
        f.plant("private:guess1@otp-private", "x");
        assert!(is_invalid_otp(f.check("guess1")));
        assert!(
            f.record("private:guess1@otp-private").is_some(),
            "untouched"
        );
    }

    #[test]
    fn spp_limits_are_checked_when_it_is_stored() {
        let f = Fixture::new("@otp-spp-limits");
        let store = &f.tenant.store;
        for (spp, ttl) in [
            ("ABC12", None),
            (&*"A".repeat(PASSCODE_CHARS_MAX + 1), None),
            ("ABC.123", None),
            ("ABC123", Some(TIME_TO_LIVE_MS_MAX as u64 + 1)),
        ] {
            let error = block_on(put_spp(store, spp, ttl, now_ms())).expect_err("refused");
            assert_eq!(error.code, AtCode::IllegalArguments, "{spp} {ttl:?}");
        }
        assert!(f.record(&spp_key("@otp-spp-limits")).is_none());
    }

    #[test]
    fn a_malformed_passcode_is_invalid_and_delayed_without_a_lookup() {
        let f = Fixture::new("@otp-malformed");
        f.put_spp("ABC123", None, now_ms());
        for passcode in ["", "ABC12", "ABC.123", &"A".repeat(PASSCODE_CHARS_MAX + 1)] {
            assert!(is_invalid_otp(f.check(passcode)), "{passcode}");
        }
        let s = Duration::from_secs;
        assert_eq!(f.clock.slept(), [s(1), s(2), s(3), s(5)]);
    }

    #[test]
    fn invalid_passcodes_wait_the_series_and_a_late_valid_one_resets_it() {
        let f = Fixture::new("@otp-series");
        f.put_spp("GOOD12", None, now_ms());
        for _ in 0..10 {
            assert!(is_invalid_otp(f.check("BAD123")));
        }
        let s = Duration::from_secs;
        let series = [1, 2, 3, 5, 8, 13, 21, 34, 55, 55].map(s);
        assert_eq!(f.clock.slept(), series);
        // Each sleep moved the hand clock on, so the last invalid arrived
        // 55 s ago; the valid one now resets the series.
        assert_eq!(f.check("GOOD12"), Ok(()));
        assert!(is_invalid_otp(f.check("BAD123")));
        assert_eq!(f.clock.slept().last(), Some(&s(1)));
    }

    #[test]
    fn when_every_slot_waits_a_passcode_is_refused_unchecked_and_at_once() {
        let f = Fixture::new("@otp-flood");
        let otp = f.issue(None, now_ms());
        let now = f.clock.now();
        let held: Vec<Duration> = (0..PASSCODE_CHECKS_PER_ATSIGN_MAX)
            .map(|_| f.tenant.passcodes.admit(now).expect("a slot").invalid(now))
            .collect();
        assert_eq!(held.len(), PASSCODE_CHECKS_PER_ATSIGN_MAX);
        let slept_before = f.clock.slept().len();
        assert!(is_invalid_otp(f.check(&otp)), "refused, valid or not");
        assert_eq!(f.clock.slept().len(), slept_before, "without a delay");
        assert!(
            f.record(&otp_key(&otp, "@otp-flood")).is_some(),
            "not looked at"
        );
        // Once the first delay has passed, the passcode is checked.
        f.clock.advance(Duration::from_secs(1));
        assert_eq!(f.check(&otp), Ok(()));
    }

    #[test]
    fn another_atsign_is_not_slowed_by_an_attack_on_one() {
        let attacked = Fixture::new("@otp-attacked");
        let other = Fixture::new("@otp-other");
        for _ in 0..5 {
            assert!(is_invalid_otp(attacked.check("WRONG1")));
        }
        assert!(is_invalid_otp(other.check("WRONG1")));
        assert_eq!(other.clock.slept(), [Duration::from_secs(1)]);
    }
}
