//! When to ask a name server again, and which addresses a name stands for meanwhile:
//! pure (no I/O, time passed in), so a test drives it with a virtual clock.
//!
//! A good answer replaces the addresses and is asked again after its TTL, clamped to
//! `[min_ttl, max_ttl]`. A failed one (no such name, no record, no server) keeps the last
//! good addresses for `keep_stale` after the first failure, trying every `retry`; past
//! that the name stands for nothing. Each transition is reported once, for the log.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One address a name resolved to, with its SRV weight (1 for A/AAAA records).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub address: SocketAddr,
    pub weight: u32,
}

/// What one lookup gave.
pub type Answer = Result<(Vec<Endpoint>, Duration), String>;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    pub keep_stale: Duration,
    pub retry: Duration,
}

impl Timing {
    pub fn from_config(dns: &tandem_config::dns::NodeDns) -> Timing {
        Timing {
            min_ttl: dns.min_ttl.get(),
            max_ttl: dns.max_ttl.get(),
            keep_stale: dns.keep_stale.get(),
            retry: dns.retry.get(),
        }
    }
}

/// What an answer changed, for the log (each is reported once per transition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Same addresses as before.
    Unchanged,
    /// The addresses changed (including the first good answer).
    Changed,
    /// The first failure after good answers (or at the start): the reason; the last good
    /// addresses stay.
    Failing(String),
    /// Still failing, nothing new to say.
    StillFailing,
    /// Failing for `keep_stale`: the stale addresses are given up.
    GaveUp,
    /// Good again after failures (the addresses may also have changed).
    Recovered,
}

#[derive(Clone, Debug)]
pub struct NameState {
    endpoints: Vec<Endpoint>,
    next_at: Instant,
    failing_since: Option<Instant>,
    last_error: Option<String>,
}

impl NameState {
    /// A name not asked yet: due at once, standing for nothing.
    pub fn new(now: Instant) -> NameState {
        NameState {
            endpoints: Vec::new(),
            next_at: now,
            failing_since: None,
            last_error: None,
        }
    }

    /// The addresses the name stands for now, sorted (a stable pool order).
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// When to ask again.
    pub fn next_at(&self) -> Instant {
        self.next_at
    }

    /// The resolver's last complaint, while the name fails.
    pub fn last_error(&self) -> Option<&str> {
        self.failing_since.and(self.last_error.as_deref())
    }

    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.next_at
    }

    /// Takes one lookup's outcome at `now`.
    pub fn on_answer(&mut self, now: Instant, answer: Answer, timing: &Timing) -> Event {
        match answer {
            Ok((mut endpoints, ttl)) if !endpoints.is_empty() => {
                endpoints.sort();
                endpoints.dedup();
                self.next_at = now + ttl.clamp(timing.min_ttl, timing.max_ttl);
                let recovered = self.failing_since.take().is_some();
                self.last_error = None;
                let changed = endpoints != self.endpoints;
                self.endpoints = endpoints;
                match (recovered, changed) {
                    (true, _) => Event::Recovered,
                    (false, true) => Event::Changed,
                    (false, false) => Event::Unchanged,
                }
            }
            other => {
                let why = match other {
                    Err(why) => why,
                    Ok(_) => "the answer holds no address".to_string(),
                };
                self.on_failure(now, why, timing)
            }
        }
    }

    fn on_failure(&mut self, now: Instant, why: String, timing: &Timing) -> Event {
        let since = *self.failing_since.get_or_insert(now);
        let first = self.last_error.is_none();
        self.last_error = Some(why.clone());
        let give_up_at = since + timing.keep_stale;
        if now >= give_up_at {
            self.next_at = now + timing.retry;
            if self.endpoints.is_empty() {
                return if first {
                    Event::Failing(why)
                } else {
                    Event::StillFailing
                };
            }
            self.endpoints.clear();
            return Event::GaveUp;
        }
        // Ask again after `retry`, but no later than the moment the stale ones expire.
        self.next_at = (now + timing.retry).min(give_up_at);
        if first {
            Event::Failing(why)
        } else {
            Event::StillFailing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing {
        min_ttl: Duration::from_secs(5),
        max_ttl: Duration::from_secs(300),
        keep_stale: Duration::from_secs(60),
        retry: Duration::from_secs(2),
    };

    fn ep(last: u8, weight: u32) -> Endpoint {
        Endpoint {
            address: SocketAddr::from(([198, 51, 100, last], 80)),
            weight,
        }
    }

    fn good(eps: &[Endpoint], ttl: u64) -> Answer {
        Ok((eps.to_vec(), Duration::from_secs(ttl)))
    }

    #[test]
    fn a_good_answer_is_asked_again_after_its_ttl_clamped_to_the_bounds() {
        let t0 = Instant::now();
        let mut s = NameState::new(t0);
        assert!(s.is_due(t0));
        assert_eq!(
            s.on_answer(t0, good(&[ep(2, 1), ep(1, 1)], 30), &TIMING),
            Event::Changed
        );
        assert_eq!(s.endpoints(), &[ep(1, 1), ep(2, 1)], "sorted");
        assert_eq!(s.next_at(), t0 + Duration::from_secs(30));
        assert!(!s.is_due(t0 + Duration::from_secs(29)));
        // TTL 0 is raised to min_ttl, a day lowered to max_ttl.
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(
            s.on_answer(t1, good(&[ep(1, 1), ep(2, 1)], 0), &TIMING),
            Event::Unchanged
        );
        assert_eq!(s.next_at(), t1 + Duration::from_secs(5));
        let t2 = t1 + Duration::from_secs(5);
        assert_eq!(
            s.on_answer(t2, good(&[ep(1, 1)], 86_400), &TIMING),
            Event::Changed
        );
        assert_eq!(s.next_at(), t2 + Duration::from_secs(300));
        assert_eq!(s.endpoints(), &[ep(1, 1)]);
    }

    #[test]
    fn a_name_that_stops_resolving_keeps_its_addresses_for_keep_stale_and_says_so_once() {
        let t0 = Instant::now();
        let mut s = NameState::new(t0);
        s.on_answer(t0, good(&[ep(1, 1)], 10), &TIMING);
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(
            s.on_answer(t1, Err("NXDOMAIN".into()), &TIMING),
            Event::Failing("NXDOMAIN".into())
        );
        assert_eq!(s.endpoints(), &[ep(1, 1)], "last good addresses kept");
        assert_eq!(s.last_error(), Some("NXDOMAIN"));
        assert_eq!(s.next_at(), t1 + TIMING.retry);
        // Retries say nothing new, and keep the addresses until keep_stale has passed.
        let mut now = t1;
        let mut events = Vec::new();
        while s.endpoints() == [ep(1, 1)] {
            now = s.next_at();
            assert!(
                now <= t1 + TIMING.keep_stale,
                "retries never overshoot keep_stale"
            );
            events.push(s.on_answer(now, Ok((Vec::new(), Duration::from_secs(10))), &TIMING));
        }
        assert_eq!(
            now,
            t1 + TIMING.keep_stale,
            "given up exactly at keep_stale"
        );
        assert_eq!(events.last(), Some(&Event::GaveUp));
        assert!(
            events[..events.len() - 1]
                .iter()
                .all(|e| *e == Event::StillFailing),
            "{events:?}"
        );
        // Still nothing: quiet retries.
        let later = s.next_at();
        assert_eq!(
            s.on_answer(later, Err("NXDOMAIN".into()), &TIMING),
            Event::StillFailing
        );
        assert!(s.endpoints().is_empty());
        // Back: recovered, addresses in again, TTL schedule again.
        let back = s.next_at();
        assert_eq!(
            s.on_answer(back, good(&[ep(3, 1)], 20), &TIMING),
            Event::Recovered
        );
        assert_eq!(s.endpoints(), &[ep(3, 1)]);
        assert_eq!(s.last_error(), None);
        assert_eq!(s.next_at(), back + Duration::from_secs(20));
    }

    #[test]
    fn a_failure_then_recovery_within_keep_stale_never_empties_the_name() {
        let t0 = Instant::now();
        let mut s = NameState::new(t0);
        s.on_answer(t0, good(&[ep(1, 1)], 5), &TIMING);
        let t1 = t0 + Duration::from_secs(5);
        assert!(matches!(
            s.on_answer(t1, Err("timeout".into()), &TIMING),
            Event::Failing(_)
        ));
        let t2 = s.next_at();
        assert_eq!(
            s.on_answer(t2, good(&[ep(1, 1)], 5), &TIMING),
            Event::Recovered
        );
        assert_eq!(s.endpoints(), &[ep(1, 1)]);
        // A later failure is a new episode: reported again, with a fresh keep_stale.
        let t3 = s.next_at();
        assert!(matches!(
            s.on_answer(t3, Err("timeout".into()), &TIMING),
            Event::Failing(_)
        ));
        assert_eq!(s.next_at(), t3 + TIMING.retry);
    }

    #[test]
    fn a_name_failing_from_the_start_is_reported_once_and_retried() {
        let t0 = Instant::now();
        let mut s = NameState::new(t0);
        assert_eq!(
            s.on_answer(t0, Err("SERVFAIL".into()), &TIMING),
            Event::Failing("SERVFAIL".into())
        );
        assert!(s.endpoints().is_empty());
        assert_eq!(s.next_at(), t0 + TIMING.retry);
        let t1 = s.next_at();
        assert_eq!(
            s.on_answer(t1, Err("SERVFAIL".into()), &TIMING),
            Event::StillFailing
        );
        let t2 = s.next_at();
        assert_eq!(
            s.on_answer(t2, good(&[ep(9, 3)], 60), &TIMING),
            Event::Recovered
        );
        assert_eq!(s.endpoints(), &[ep(9, 3)]);
    }

    #[test]
    fn duplicate_records_count_once() {
        let t0 = Instant::now();
        let mut s = NameState::new(t0);
        s.on_answer(t0, good(&[ep(1, 1), ep(1, 1)], 60), &TIMING);
        assert_eq!(s.endpoints(), &[ep(1, 1)]);
    }
}
