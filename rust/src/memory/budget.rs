//! The per-process byte budget (`prefetchMB`): bytes requested or fetched ahead of the consumer.
//!
//! A reservation is taken before a request is sent and released when its bytes are handed to
//! Python (or the request is cancelled), so memory held by the pipeline never exceeds the budget
//! however large the objects are.

use std::sync::{Arc, Mutex};

use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

use crate::per_process::PerProcess;

/// A pool of bytes shared by every stream of a process.
#[derive(Debug)]
pub struct Budget {
    capacity: u64,
    /// Signed: a forced reservation may overdraw it (see [`Budget::force_reserve`]).
    available: Mutex<i64>,
    released: Arc<Notify>,
}

/// Budgets of this process, one per capacity.
static PROCESS_BUDGETS: PerProcess<Vec<Arc<Budget>>> = PerProcess::new();

impl Budget {
    /// A budget of `capacity` bytes.
    pub fn new(capacity: u64) -> Arc<Self> {
        Arc::new(Budget {
            capacity,
            available: Mutex::new(i64::try_from(capacity).unwrap_or(i64::MAX)),
            released: Arc::new(Notify::new()),
        })
    }

    /// The process's budget of `capacity` bytes, shared by every stream configured with that
    /// `prefetchMB`; a forked child gets its own rather than its parent's accounting.
    pub fn for_process(capacity: u64) -> Arc<Self> {
        PROCESS_BUDGETS.with(Vec::new, |budgets| {
            if let Some(b) = budgets.iter().find(|b| b.capacity == capacity) {
                return b.clone();
            }
            let b = Budget::new(capacity);
            budgets.push(b.clone());
            b
        })
    }

    /// Total bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes not reserved right now (negative while overdrawn).
    pub fn available(&self) -> i64 {
        *self.available.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `amount` bytes if that many are free.
    pub fn try_reserve(self: &Arc<Self>, amount: u64) -> Option<Reservation> {
        let amount_signed = i64::try_from(amount).ok()?;
        let mut available = self.available.lock().unwrap_or_else(|p| p.into_inner());
        if *available < amount_signed {
            return None;
        }
        *available -= amount_signed;
        Some(Reservation {
            budget: self.clone(),
            amount,
        })
    }

    /// Reserves `amount` bytes even beyond the budget. A stream with nothing in flight uses this
    /// for one part, so streams sharing a budget can never wait on each other forever (say, a
    /// kept object of one dataset holding parts while another dataset is iterated).
    pub fn force_reserve(self: &Arc<Self>, amount: u64) -> Reservation {
        let mut available = self.available.lock().unwrap_or_else(|p| p.into_inner());
        *available = available.saturating_sub(i64::try_from(amount).unwrap_or(i64::MAX));
        Reservation {
            budget: self.clone(),
            amount,
        }
    }

    /// Resolves after some reservation is released; create (and enable) it before trying to
    /// reserve so a release in between is not missed.
    pub fn released(&self) -> OwnedNotified {
        self.released.clone().notified_owned()
    }

    fn release(&self, amount: u64) {
        if amount == 0 {
            return;
        }
        let mut available = self.available.lock().unwrap_or_else(|p| p.into_inner());
        *available = available.saturating_add(i64::try_from(amount).unwrap_or(i64::MAX));
        drop(available);
        self.released.notify_waiters();
    }
}

/// Bytes held from a [`Budget`]; released on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    amount: u64,
}

impl Reservation {
    /// Bytes held.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// Gives back what exceeds `needed` (a response turned out smaller than reserved).
    pub fn shrink_to(&mut self, needed: u64) {
        if needed < self.amount {
            self.budget.release(self.amount - needed);
            self.amount = needed;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.release(self.amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_bounded_and_released_on_drop() {
        let b = Budget::new(100);
        let r1 = b.try_reserve(60).unwrap();
        assert!(b.try_reserve(50).is_none());
        let mut r2 = b.try_reserve(40).unwrap();
        assert_eq!(b.available(), 0);
        r2.shrink_to(10);
        assert_eq!(b.available(), 30);
        drop(r1);
        assert_eq!(b.available(), 90);
        drop(r2);
        assert_eq!(b.available(), 100);
        assert_eq!(b.capacity(), 100);
    }

    #[test]
    fn forced_reservations_overdraw_and_pay_back() {
        let b = Budget::new(10);
        let held = b.try_reserve(10).unwrap();
        let forced = b.force_reserve(4);
        assert_eq!(b.available(), -4);
        assert!(b.try_reserve(1).is_none());
        drop(held);
        assert_eq!(b.available(), 6);
        drop(forced);
        assert_eq!(b.available(), 10);
    }

    #[test]
    fn process_budgets_are_shared_per_capacity() {
        let a = Budget::for_process(1000);
        let b = Budget::for_process(1000);
        let c = Budget::for_process(2000);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.capacity(), 2000);
    }

    #[test]
    fn shrink_never_grows() {
        let b = Budget::new(10);
        let mut r = b.try_reserve(5).unwrap();
        r.shrink_to(8);
        assert_eq!(r.amount(), 5);
        assert_eq!(b.available(), 5);
    }
}
