//! Per-login message rate limit: a token bucket, so short bursts pass and floods don't.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::time::Instant;

/// Past this many tracked logins, full buckets are dropped before a new one is added.
const FORGET_WHEN_TRACKING: usize = 4096;

pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    /// Touched once per message; a std mutex because nothing awaits while holding it.
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
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

    /// Takes one message's worth from `key`'s bucket, or says no.
    pub fn allow(&self, key: &str) -> bool {
        if self.per_second <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limit lock");
        if buckets.len() >= FORGET_WHEN_TRACKING && !buckets.contains_key(key) {
            self.forget_full(&mut buckets, now);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        bucket.tokens = (bucket.tokens
            + now.duration_since(bucket.at).as_secs_f64() * self.per_second)
            .min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets buckets that have refilled: they'd start full anyway.
    fn forget_full(&self, buckets: &mut HashMap<String, Bucket>, now: Instant) {
        let refill = self.burst / self.per_second;
        buckets.retain(|_, bucket| now.duration_since(bucket.at).as_secs_f64() < refill);
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
    }
}
