//! Rate limits: token buckets per key (a login, a bot, a client address), so short bursts
//! pass and floods don't; a bucket a socket keeps for itself; totals that never refill; and
//! budgets of wrong guesses at a secret per client address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use crate::store::{self, Storage};

/// Past this many tracked keys, full buckets are dropped before a new one is added.
const FORGET_WHEN_TRACKING: usize = 4096;
/// Never more buckets than this: past it, the longest untouched one goes, so a flood of new
/// keys (addresses, say) can't grow the map without end.
const MAX_TRACKED: usize = 4 * FORGET_WHEN_TRACKING;

pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    /// Touched once per message; a std mutex because nothing awaits while holding it.
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// One token bucket. Its rate and burst are its owner's, so it stays two words.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A bucket holding `burst` tokens.
    pub fn full(burst: f64) -> Bucket {
        Bucket {
            tokens: burst.max(1.0),
            at: Instant::now(),
        }
    }

    /// Refills at `per_second` up to `burst` since the last take, then takes one token, or
    /// says no.
    pub fn take(&mut self, now: Instant, per_second: f64, burst: f64) -> bool {
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * per_second)
            .min(burst.max(1.0));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl RateLimiter {
    /// `per_second` of 0 turns the limit off.
    pub fn new(per_second: f64, burst: f64) -> Self {
        RateLimiter {
            per_second,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `per_minute` with a burst of as many: a few things a minute (rooms, say).
    pub fn per_minute(per_minute: f64) -> Self {
        RateLimiter::new(per_minute / 60.0, per_minute)
    }

    /// `per_hour` with a burst of as many.
    pub fn per_hour(per_hour: f64) -> Self {
        RateLimiter::new(per_hour / 3600.0, per_hour)
    }

    /// Takes one message's worth from `key`'s bucket, or says no.
    pub fn allow(&self, key: &str) -> bool {
        if self.per_second <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limit lock");
        if buckets.len() >= FORGET_WHEN_TRACKING && !buckets.contains_key(key) {
            self.forget_full(&mut buckets, now);
            if buckets.len() >= MAX_TRACKED {
                forget_oldest(&mut buckets);
            }
        }
        buckets
            .entry(key.to_owned())
            .or_insert_with(|| Bucket::full(self.burst))
            .take(now, self.per_second, self.burst)
    }

    /// Puts back what [`RateLimiter::allow`] took, up to the burst: for budgets that count only
    /// failures, taken before trying so that tries made at once can't all pass.
    pub fn give_back(&self, key: &str) {
        let mut buckets = self.buckets.lock().expect("rate limit lock");
        if let Some(bucket) = buckets.get_mut(key) {
            bucket.tokens = (bucket.tokens + 1.0).min(self.burst);
        }
    }

    /// Whole seconds until one more token is back, for `Retry-After`.
    pub fn seconds_per_token(&self) -> u64 {
        if self.per_second <= 0.0 {
            return 0;
        }
        (1.0 / self.per_second).ceil().max(1.0) as u64
    }

    /// Forgets buckets that have refilled: they'd start full anyway.
    fn forget_full(&self, buckets: &mut HashMap<String, Bucket>, now: Instant) {
        let refill = self.burst / self.per_second;
        buckets.retain(|_, bucket| now.duration_since(bucket.at).as_secs_f64() < refill);
    }
}

/// A total per key that never refills, such as the rooms one login may create. Only keys
/// that used some are kept, so it holds no more entries than what it counts.
pub struct Quota {
    limit: usize,
    used: Mutex<HashMap<String, usize>>,
}

impl Quota {
    /// A `limit` of 0 turns it off.
    pub fn new(limit: usize) -> Quota {
        Quota {
            limit,
            used: Mutex::new(HashMap::new()),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Counts one more for `key`, or says no once it has used `limit`.
    pub fn take(&self, key: &str) -> bool {
        if self.limit == 0 {
            return true;
        }
        let mut used = self.used.lock().expect("quota lock");
        let count = used.entry(key.to_owned()).or_insert(0);
        if *count >= self.limit {
            return false;
        }
        *count += 1;
        true
    }

    /// Undoes a [`Quota::take`] whose thing was not made after all.
    pub fn give_back(&self, key: &str) {
        let mut used = self.used.lock().expect("quota lock");
        if let Some(count) = used.get_mut(key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                used.remove(key);
            }
        }
    }
}

/// Budgets of wrong guesses at a secret: a client address's, a nickname's.
pub enum Guesses {
    /// In this process's memory: the store is this process's alone.
    Here(RateLimiter),
    /// In the store several instances share, so a guesser gains nothing by spreading tries
    /// over them. While the store fails, this process's own budgets apply.
    Shared {
        storage: Arc<dyn Storage>,
        fallback: RateLimiter,
    },
}

impl Guesses {
    /// Takes one try from `key`'s budget, or says no.
    pub async fn allow(&self, key: &str) -> bool {
        let (storage, fallback) = match self {
            Guesses::Here(limiter) => return limiter.allow(key),
            Guesses::Shared { storage, fallback } => (storage, fallback),
        };
        let (rate, burst) = (fallback.per_second, fallback.burst);
        let shared_key = key.to_owned();
        let taken = store::blocking(storage, move |s| s.take_token(&shared_key, rate, burst));
        match taken.await {
            Ok(allowed) => allowed,
            Err(e) => {
                tracing::warn!(error = %e, "shared guess budgets failed; this instance's apply");
                fallback.allow(key)
            }
        }
    }

    /// Gives back the try [`Guesses::allow`] took: the secret was right.
    pub async fn give_back(&self, key: &str) {
        match self {
            Guesses::Here(limiter) => limiter.give_back(key),
            Guesses::Shared { storage, fallback } => {
                // The try came from one of the two; a full bucket takes nothing back.
                fallback.give_back(key);
                let (key, burst) = (key.to_owned(), fallback.burst);
                let given = store::blocking(storage, move |s| s.give_token_back(&key, burst));
                if let Err(e) = given.await {
                    tracing::warn!(error = %e, "could not give a right guess's try back");
                }
            }
        }
    }

    /// Whole seconds until one more try is back, for `Retry-After`.
    pub fn seconds_per_token(&self) -> u64 {
        match self {
            Guesses::Here(limiter)
            | Guesses::Shared {
                fallback: limiter, ..
            } => limiter.seconds_per_token(),
        }
    }
}

/// What one login, or one client address, may create: rooms (a rate per login and per
/// address, and a total per login) and names reserved for good (a rate per address; the
/// total of bots per login is [`crate::bots::MAX_BOTS_PER_LOGIN`]).
pub struct CreationLimits {
    /// Keyed by `login:{id}` and by `addr:{address}`.
    pub rooms: RateLimiter,
    /// Keyed by login id.
    pub rooms_per_login: Quota,
    /// Names reserved for good (bots, and nicknames protected with a password), keyed by
    /// client address: the per-login caps start over at every new login.
    pub reserved_names: RateLimiter,
}

/// Drops the bucket touched longest ago.
fn forget_oldest(buckets: &mut HashMap<String, Bucket>) {
    if let Some(oldest) = buckets
        .iter()
        .min_by_key(|(_, bucket)| bucket.at)
        .map(|(key, _)| key.clone())
    {
        buckets.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_applies() {
        let limiter = RateLimiter::new(10.0, 30.0);
        assert_eq!((0..40).filter(|_| limiter.allow("a")).count(), 30);
        assert!(limiter.allow("b"), "buckets are per login");
    }

    #[test]
    fn zero_turns_it_off() {
        let limiter = RateLimiter::new(0.0, 30.0);
        assert!((0..1000).all(|_| limiter.allow("a")));
        let quota = Quota::new(0);
        assert!((0..1000).all(|_| quota.take("a")));
    }

    #[test]
    fn a_bucket_refills_at_its_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::full(2.0);
        assert!(bucket.take(start, 0.5, 2.0));
        assert!(bucket.take(start, 0.5, 2.0));
        assert!(!bucket.take(start, 0.5, 2.0), "the burst is spent");
        let later = start + std::time::Duration::from_secs(2);
        assert!(bucket.take(later, 0.5, 2.0), "one token back after 2 s");
        assert!(!bucket.take(later, 0.5, 2.0));
    }

    #[test]
    fn a_quota_counts_per_key_and_takes_back() {
        let quota = Quota::new(2);
        assert!(quota.take("a"));
        assert!(quota.take("a"));
        assert!(!quota.take("a"), "used up");
        assert!(quota.take("b"), "quotas are per key");
        quota.give_back("a");
        assert!(quota.take("a"), "given back");
        assert!(!quota.take("a"));
    }

    #[test]
    fn what_is_given_back_can_be_taken_again_but_never_past_the_burst() {
        let limiter = RateLimiter::new(0.001, 3.0);
        // Right guesses cost nothing...
        for _ in 0..10 {
            assert!(limiter.allow("a"));
            limiter.give_back("a");
        }
        // ...three wrong ones use the budget up...
        assert_eq!((0..5).filter(|_| limiter.allow("a")).count(), 3);
        // ...and giving back never fills it past the burst.
        for _ in 0..10 {
            limiter.give_back("a");
        }
        assert_eq!((0..5).filter(|_| limiter.allow("a")).count(), 3);
    }

    #[test]
    fn the_number_of_buckets_is_bounded() {
        let limiter = RateLimiter::new(0.001, 3.0);
        for key in 0..MAX_TRACKED + 100 {
            assert!(limiter.allow(&key.to_string()));
        }
        assert!(limiter.buckets.lock().unwrap().len() <= MAX_TRACKED);
    }
}
