//! Values each process must have its own of: the runtime, the HTTP client, the byte budget, the
//! buffer pool.
//!
//! DataLoader workers are forked from the process that built the dataset. A child inherits its
//! parent's memory but not its threads, so a runtime or a connection pool copied across fork
//! is dead weight at best (its threads do not exist) and a hang or corrupted socket at worst
//! (its sockets are shared with the parent). A [`PerProcess`] remembers which process made its
//! value; another process gets a value of its own. The inherited one is leaked, never dropped:
//! dropping a runtime would join threads that do not exist here, and closing a pooled socket
//! would close it under the parent.

use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};

/// One `T` per process, made on first use in each.
#[derive(Debug)]
pub(crate) struct PerProcess<T> {
    slot: Mutex<Option<(u32, T)>>,
}

impl<T> PerProcess<T> {
    /// Empty: every process makes its value on first use.
    pub(crate) const fn new() -> Self {
        PerProcess {
            slot: Mutex::new(None),
        }
    }

    /// Runs `f` on the calling process's value, made by `make` first when this process has
    /// none yet. Calls are serialised: `f` should be short.
    ///
    /// # Errors
    /// What `make` returns; the next call tries again.
    pub(crate) fn try_with<R, E>(
        &self,
        make: impl FnOnce() -> Result<T, E>,
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<R, E> {
        let mut slot = self.lock_own();
        let entry = match slot.take() {
            Some(own) => own,
            None => (std::process::id(), make()?),
        };
        let (_, value) = slot.insert(entry);
        Ok(f(value))
    }

    /// As [`PerProcess::try_with`] for a `make` that cannot fail.
    pub(crate) fn with<R>(&self, make: impl FnOnce() -> T, f: impl FnOnce(&mut T) -> R) -> R {
        match self.try_with(|| Ok::<T, std::convert::Infallible>(make()), f) {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    /// The slot, emptied (and its value leaked) when another process made it.
    fn lock_own(&self) -> MutexGuard<'_, Option<(u32, T)>> {
        // A panic while holding the lock leaves the value as it was: still usable.
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot
            .as_ref()
            .is_some_and(|(owner, _)| *owner != std::process::id())
        {
            std::mem::forget(slot.take());
        }
        slot
    }
}

impl<T> Drop for PerProcess<T> {
    /// An inherited value is leaked here too: a forked child dropping its copy of a parent's
    /// object (say a `Client` it replaces) must not drop the parent's HTTP client, whose
    /// connections would wake tasks on the parent's runtime, whose locks a parent thread may
    /// have held at the fork: the child would hang.
    fn drop(&mut self) {
        drop(self.lock_own());
    }
}

/// A value that only the process that made it may drop (the Python objects that hold
/// streams, uploads and clients): in a forked child, which inherits such objects and drops
/// them as its Python code lets go of them, it is leaked instead (see [`PerProcess`]).
#[derive(Debug)]
pub(crate) struct ProcessBound<T> {
    owner: u32,
    value: ManuallyDrop<T>,
}

impl<T> ProcessBound<T> {
    pub(crate) fn new(value: T) -> Self {
        ProcessBound {
            owner: std::process::id(),
            value: ManuallyDrop::new(value),
        }
    }
}

impl<T> Deref for ProcessBound<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for ProcessBound<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T> Drop for ProcessBound<T> {
    fn drop(&mut self) {
        if self.owner == std::process::id() {
            // SAFETY: dropped once, here, and never used again (this is its owner's drop).
            unsafe { ManuallyDrop::drop(&mut self.value) }
        }
    }
}

impl<T: Clone> PerProcess<T> {
    /// A clone of the calling process's value, made by `make` on first use in this process.
    ///
    /// # Errors
    /// What `make` returns; the next call tries again.
    pub(crate) fn get_or_try_init<E>(&self, make: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        self.try_with(make, |value| value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Counts drops, so the test can tell a leaked value from a dropped one.
    #[derive(Debug, Clone)]
    struct Tracked(Arc<AtomicUsize>);

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn one_value_per_process_and_an_inherited_one_is_leaked() {
        let drops = Arc::new(AtomicUsize::new(0));
        let cell: PerProcess<u32> = PerProcess::new();
        let mut made = 0;
        for _ in 0..3 {
            let v = cell.get_or_try_init(|| {
                made += 1;
                Ok::<_, ()>(7)
            });
            assert_eq!(v, Ok(7));
        }
        assert_eq!(made, 1, "made once in this process");
        assert_eq!(cell.get_or_try_init(|| Err::<u32, _>("unused")), Ok(7));

        // A value another process made, as a forked child finds it.
        let inherited: PerProcess<Tracked> = PerProcess::new();
        *inherited.slot.lock().unwrap() = Some((std::process::id() + 1, Tracked(drops.clone())));
        let fresh = Arc::new(AtomicUsize::new(0));
        let ours = inherited.with(|| Tracked(fresh.clone()), |v| Arc::ptr_eq(&v.0, &fresh));
        assert!(ours, "the child made its own value");
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "the parent's value is never dropped"
        );

        // Dropped in a process that did not make it: still leaked.
        let foreign: PerProcess<Tracked> = PerProcess::new();
        *foreign.slot.lock().unwrap() = Some((std::process::id() + 1, Tracked(drops.clone())));
        drop(foreign);
        let bound = ProcessBound {
            owner: std::process::id() + 1,
            value: ManuallyDrop::new(Tracked(drops.clone())),
        };
        drop(bound);
        assert_eq!(drops.load(Ordering::SeqCst), 0, "nor in their drops");
        drop(ProcessBound::new(Tracked(drops.clone())));
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "the owner's value is dropped"
        );

        // A failed make leaves the slot empty, and the next call tries again.
        let failing: PerProcess<u32> = PerProcess::new();
        assert_eq!(failing.get_or_try_init(|| Err("no")), Err("no"));
        assert_eq!(failing.get_or_try_init(|| Ok::<_, &str>(3)), Ok(3));
        // Mutation through `with` persists.
        failing.with(|| 0, |v| *v += 1);
        assert_eq!(failing.with(|| 0, |v| *v), 4);
    }
}
