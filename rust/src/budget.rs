//! The per-process byte budget (`prefetchMB`): bytes requested or fetched ahead of the consumer.
//!
//! A reservation is taken before a request is sent and released when its bytes are handed to
//! Python (or the request is cancelled), so memory held by the pipeline never exceeds the budget
//! however large the objects are.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// A pool of bytes shared by every stream of a process.
#[derive(Debug)]
pub struct Budget {
    capacity: u64,
    available: Mutex<u64>,
    released: Notify,
}

static PROCESS_BUDGET: Mutex<Option<(u32, Arc<Budget>)>> = Mutex::new(None);

impl Budget {
    /// A budget of `capacity` bytes.
    pub fn new(capacity: u64) -> Arc<Self> {
        Arc::new(Budget {
            capacity,
            available: Mutex::new(capacity),
            released: Notify::new(),
        })
    }

    /// The budget of the current process, created with `capacity` on first use; a forked child
    /// gets its own rather than its parent's accounting.
    pub fn for_process(capacity: u64) -> Arc<Self> {
        let pid = std::process::id();
        let mut slot = PROCESS_BUDGET.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            Some((owner, b)) if *owner == pid => b.clone(),
            _ => {
                let b = Budget::new(capacity);
                *slot = Some((pid, b.clone()));
                b
            }
        }
    }

    /// Total bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes not reserved right now.
    pub fn available(&self) -> u64 {
        *self.available.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `amount` bytes if that many are free.
    pub fn try_reserve(self: &Arc<Self>, amount: u64) -> Option<Reservation> {
        let mut available = self.available.lock().unwrap_or_else(|p| p.into_inner());
        if *available < amount {
            return None;
        }
        *available -= amount;
        Some(Reservation {
            budget: self.clone(),
            amount,
        })
    }

    /// Resolves after some reservation is released; create it before trying to reserve so a
    /// release in between is not missed.
    pub fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }

    fn release(&self, amount: u64) {
        if amount == 0 {
            return;
        }
        let mut available = self.available.lock().unwrap_or_else(|p| p.into_inner());
        *available = (*available + amount).min(self.capacity);
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
    fn shrink_never_grows() {
        let b = Budget::new(10);
        let mut r = b.try_reserve(5).unwrap();
        r.shrink_to(8);
        assert_eq!(r.amount(), 5);
        assert_eq!(b.available(), 5);
    }
}
