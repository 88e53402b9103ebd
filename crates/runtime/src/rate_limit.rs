//! A token bucket for calls to an outside API: at most `burst` calls at once, refilled at
//! `per_second`. Callers wait their turn with [`TokenBucket::acquire`]; waiting is fair in
//! arrival order because the bucket's lock is a FIFO tokio mutex.
//!
//! Hand-written (40 lines) rather than `governor`, whose keyed limiters, clocks and
//! `dashmap` we do not need.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use datum_runtime::rate_limit::TokenBucket;
//!
//! let bucket = TokenBucket::new(100.0, 2);
//! bucket.acquire().await;
//! assert!(bucket.try_acquire());
//! assert!(!bucket.try_acquire(), "the burst of two is spent");
//! # }
//! ```

use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// A token bucket.
#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens (at least one), refilled at `per_second` (at least
    /// one token a minute).
    pub fn new(per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            per_second: per_second.max(1.0 / 60.0),
            burst,
            state: Mutex::new(State {
                tokens: burst,
                refilled_at: Instant::now(),
            }),
        }
    }

    /// Waits for a token and takes it.
    pub async fn acquire(&self) {
        let mut state = self.state.lock().await;
        self.refill(&mut state);
        if state.tokens < 1.0 {
            let wait = (1.0 - state.tokens) / self.per_second;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
            self.refill(&mut state);
        }
        state.tokens = (state.tokens - 1.0).max(0.0);
    }

    /// Takes a token if one is there now.
    pub fn try_acquire(&self) -> bool {
        let Ok(mut state) = self.state.try_lock() else {
            return false;
        };
        self.refill(&mut state);
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refill(&self, state: &mut State) {
        let now = Instant::now();
        let elapsed = now.duration_since(state.refilled_at).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.per_second).min(self.burst);
        state.refilled_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_empty_bucket_refills_at_its_rate() {
        let bucket = TokenBucket::new(2.0, 1);
        assert!(bucket.try_acquire());
        assert!(!bucket.try_acquire());
        let before = Instant::now();
        bucket.acquire().await;
        // Paused tokio time: the wait is exactly the refill time of one token.
        assert_eq!(Instant::now() - before, Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_never_exceed_the_burst() {
        let bucket = TokenBucket::new(1000.0, 3);
        tokio::time::advance(Duration::from_secs(60)).await;
        let taken = (0..10).filter(|_| bucket.try_acquire()).count();
        assert_eq!(taken, 3);
    }
}
