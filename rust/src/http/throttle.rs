//! Adaptive request concurrency: halve when the store throttles, creep back up on success.
//!
//! A shared store answers overload with 503/429. Retrying at full concurrency keeps it
//! overloaded, so every attempt passes this gate, whose limit follows AIMD: halved (at most once
//! per cool-down) on a throttling answer, raised by one after `limit` successes in a row.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How often the limit may be halved: one burst of simultaneous 503s is one signal, not twenty.
const COOL_DOWN: Duration = Duration::from_millis(250);

#[derive(Debug)]
struct State {
    limit: usize,
    in_use: usize,
    successes: usize,
    last_cut: Option<Instant>,
}

/// A concurrency gate whose width adapts to throttling.
#[derive(Debug)]
pub(crate) struct AdaptiveLimit {
    max: usize,
    state: Mutex<State>,
    freed: Notify,
}

/// A slot in the gate, given back on drop.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    gate: &'a AdaptiveLimit,
}

impl AdaptiveLimit {
    /// A gate allowing up to `max` attempts at once.
    pub(crate) fn new(max: usize) -> Self {
        let max = max.max(1);
        AdaptiveLimit {
            max,
            state: Mutex::new(State {
                limit: max,
                in_use: 0,
                successes: 0,
                last_cut: None,
            }),
            freed: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current width.
    #[cfg(test)]
    pub(crate) fn limit(&self) -> usize {
        self.state().limit
    }

    /// Waits for a slot.
    pub(crate) async fn acquire(&self) -> Permit<'_> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut s = self.state();
                if s.in_use < s.limit {
                    s.in_use += 1;
                    return Permit { gate: self };
                }
            }
            freed.await;
        }
    }

    /// The store said to slow down.
    pub(crate) fn on_throttled(&self, now: Instant) {
        let mut s = self.state();
        if s.last_cut
            .is_some_and(|t| now.duration_since(t) < COOL_DOWN)
        {
            return;
        }
        let before = s.limit;
        s.limit = (s.limit / 2).max(1);
        s.successes = 0;
        s.last_cut = Some(now);
        if s.limit != before {
            log::warn!(
                target: "osstorchconnector",
                "the store is throttling: requests in flight lowered from {before} to {}",
                s.limit
            );
        }
    }

    /// An attempt succeeded.
    pub(crate) fn on_success(&self) {
        let mut s = self.state();
        if s.limit >= self.max {
            return;
        }
        s.successes += 1;
        if s.successes >= s.limit {
            s.successes = 0;
            s.limit += 1;
            drop(s);
            self.freed.notify_waiters();
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.gate.state().in_use -= 1;
        self.gate.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_once_per_cool_down_and_recovers_additively() {
        let gate = AdaptiveLimit::new(16);
        let t0 = Instant::now();
        gate.on_throttled(t0);
        gate.on_throttled(t0 + Duration::from_millis(10)); // same burst
        assert_eq!(gate.limit(), 8);
        gate.on_throttled(t0 + COOL_DOWN * 2);
        assert_eq!(gate.limit(), 4);
        for _ in 0..4 {
            gate.on_success();
        }
        assert_eq!(gate.limit(), 5);
        for _ in 0..1000 {
            gate.on_success();
        }
        assert_eq!(gate.limit(), 16, "never above the configured maximum");
    }

    #[test]
    fn never_below_one() {
        let gate = AdaptiveLimit::new(2);
        let t0 = Instant::now();
        for i in 0..10 {
            gate.on_throttled(t0 + COOL_DOWN * (i + 1));
        }
        assert_eq!(gate.limit(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn permits_bound_concurrency() {
        let gate = AdaptiveLimit::new(2);
        let a = gate.acquire().await;
        let _b = gate.acquire().await;
        let third = tokio::time::timeout(Duration::from_millis(20), gate.acquire()).await;
        assert!(third.is_err(), "a third permit must wait");
        drop(a);
        let third = tokio::time::timeout(Duration::from_millis(20), gate.acquire()).await;
        assert!(third.is_ok());
    }
}
