//! Per-object exponential backoff with jitter, reset on success.
//!
//! kube-runtime's `error_policy` is never told about successes, so it cannot grow a delay
//! per object and reset it. [`Backoff`] keeps a failure count per key (an object's UID, so
//! a deleted-and-recreated object starts afresh) and hands out delays that double from
//! `initial` up to `max`, each with "equal jitter": a random point in the upper half of the
//! interval, so many objects that failed together do not retry together.
//!
//! ```
//! use std::time::Duration;
//! use datum_runtime::backoff::Backoff;
//!
//! let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
//! let first = backoff.next_delay("uid-1");
//! let second = backoff.next_delay("uid-1");
//! assert!(first <= Duration::from_millis(100) && second <= Duration::from_millis(200));
//! assert_eq!(backoff.failures("uid-1"), 2);
//! backoff.reset("uid-1");
//! assert_eq!(backoff.failures("uid-1"), 0);
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Failure counts per object and the delays they earn.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// A backoff whose first delay is at most `initial` and whose delays never exceed `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure of `key` and returns how long to wait before retrying it.
    pub fn next_delay(&self, key: &str) -> Duration {
        let attempt = {
            let mut failures = self.lock();
            let count = failures.entry(key.to_owned()).or_insert(0);
            *count = count.saturating_add(1);
            *count
        };
        jittered(self.ceiling(attempt))
    }

    /// Forgets the failures of `key`: its next failure waits `initial` again.
    pub fn reset(&self, key: &str) {
        self.lock().remove(key);
    }

    /// How many failures in a row `key` has had.
    pub fn failures(&self, key: &str) -> u32 {
        self.lock().get(key).copied().unwrap_or(0)
    }

    /// The delay bound of the `attempt`-th failure in a row (1-based), before jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << exponent)
            .unwrap_or(self.max)
            .min(self.max)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        // A poisoned map only means another thread panicked mid-update of a counter; the
        // counts are still usable.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A random duration in `[ceiling / 2, ceiling]`.
fn jittered(ceiling: Duration) -> Duration {
    let half = ceiling / 2;
    let spread = (ceiling - half).as_millis().min(u128::from(u64::MAX)) as u64;
    half + Duration::from_millis(rand::random_range(0..=spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
    }

    #[test]
    fn delays_double_up_to_the_maximum() {
        let b = backoff();
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(200));
        assert_eq!(b.ceiling(4), Duration::from_millis(800));
        assert_eq!(b.ceiling(7), Duration::from_secs(5));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn each_delay_lies_in_the_upper_half_of_its_interval() {
        let b = backoff();
        for attempt in 1..=10 {
            let delay = b.next_delay("a");
            let ceiling = b.ceiling(attempt);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} not in [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
    }

    #[test]
    fn success_resets_only_that_object() {
        let b = backoff();
        b.next_delay("a");
        b.next_delay("a");
        b.next_delay("b");
        b.reset("a");
        assert_eq!(b.failures("a"), 0);
        assert_eq!(b.failures("b"), 1);
        assert!(b.next_delay("a") <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_delays() {
        let delays: std::collections::HashSet<_> =
            (0..50).map(|_| jittered(Duration::from_secs(10))).collect();
        assert!(delays.len() > 1, "50 jittered delays were all equal");
    }
}
