//! RCU-style publication of immutable snapshots from the control thread to worker cores.
//!
//! Workers call [`Reader::get`] once per burst: one Acquire load of a generation counter and,
//! only when it moved, a clone of the new `Arc` (the one atomic RMW per *change*, never per
//! packet). Each reader then records the generation it uses in its own slot, so the publisher
//! knows when a retired snapshot is no longer in use and drops it on the control thread:
//! a worker never runs a snapshot's destructor.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A reader's acknowledged generation, alone on its cache line: only its worker writes it.
#[repr(align(64))]
struct ReaderSlot(AtomicU64);

struct Shared<T> {
    generation: AtomicU64,
    current: Mutex<Arc<T>>,
    readers: Box<[ReaderSlot]>,
}

/// The control thread's end. Not `Clone`: there is one publisher.
pub struct Publisher<T> {
    shared: Arc<Shared<T>>,
    /// Replaced snapshots with the generation that replaced them; dropped once every reader
    /// has acknowledged that generation or a later one.
    retired: Vec<(u64, Arc<T>)>,
}

/// A worker's end; owned by its core.
pub struct Reader<T> {
    shared: Arc<Shared<T>>,
    local: Arc<T>,
    seen: u64,
    slot: usize,
}

/// Creates a publisher and `readers` readers, all starting on `initial` (generation 1).
pub fn channel<T>(initial: T, readers: usize) -> (Publisher<T>, Vec<Reader<T>>) {
    let initial = Arc::new(initial);
    let shared = Arc::new(Shared {
        generation: AtomicU64::new(1),
        current: Mutex::new(initial.clone()),
        readers: (0..readers).map(|_| ReaderSlot(AtomicU64::new(1))).collect(),
    });
    let rs = (0..readers)
        .map(|slot| Reader { shared: shared.clone(), local: initial.clone(), seen: 1, slot })
        .collect();
    (Publisher { shared, retired: Vec::new() }, rs)
}

impl<T> Publisher<T> {
    /// Makes `next` current and returns its generation. Workers pick it up at their next
    /// burst boundary.
    pub fn publish(&mut self, next: T) -> u64 {
        let next = Arc::new(next);
        let mut current = self.shared.current.lock();
        let old = std::mem::replace(&mut *current, next);
        // Bumped under the lock so a reader that sees generation g and then locks gets
        // generation g or newer, never older.
        let generation = self.shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        drop(current);
        self.retired.push((generation, old));
        self.reclaim();
        generation
    }

    /// The snapshot currently published.
    pub fn current(&self) -> Arc<T> {
        self.shared.current.lock().clone()
    }

    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// The oldest generation any reader still uses.
    pub fn min_seen(&self) -> u64 {
        self.shared.readers.iter().map(|r| r.0.load(Ordering::Acquire)).min().unwrap_or(u64::MAX)
    }

    /// Drops retired snapshots no reader can hold any more. Returns how many remain.
    pub fn reclaim(&mut self) -> usize {
        let min_seen = self.min_seen();
        self.retired.retain(|(replaced_at, _)| *replaced_at > min_seen);
        self.retired.len()
    }

    /// Waits until every reader uses `generation` or later; returns how long that took, or
    /// None on timeout (a reader that is not polling, e.g. a stalled worker).
    pub fn wait_visible(&mut self, generation: u64, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        loop {
            if self.min_seen() >= generation {
                self.reclaim();
                return Some(start.elapsed());
            }
            if start.elapsed() >= timeout {
                return None;
            }
            std::thread::yield_now();
        }
    }
}

impl<T> Reader<T> {
    /// The current snapshot; call at a burst boundary.
    #[inline]
    pub fn get(&mut self) -> &Arc<T> {
        self.refresh();
        &self.local
    }

    /// Picks up a newer snapshot if one was published; true when it switched. Call at a
    /// burst boundary, then read [`Reader::current`].
    #[inline]
    pub fn refresh(&mut self) -> bool {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation == self.seen {
            return false;
        }
        self.switch_to(generation);
        true
    }

    /// The snapshot picked up by the last `get` or `refresh`.
    #[inline]
    pub fn current(&self) -> &Arc<T> {
        &self.local
    }

    #[cold]
    fn switch_to(&mut self, generation: u64) {
        // The publisher keeps the replaced snapshot in `retired` until this reader's
        // acknowledgement below, so this assignment never runs a destructor here.
        self.local = self.shared.current.lock().clone();
        self.seen = generation;
        self.shared.readers[self.slot].0.store(generation, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Counted(Arc<AtomicUsize>, u32);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn readers_see_new_snapshot_and_old_is_dropped_by_publisher_only() {
        let drops = Arc::new(AtomicUsize::new(0));
        let (mut publisher, mut readers) = channel(Counted(drops.clone(), 1), 2);
        assert_eq!(readers[0].get().1, 1);
        let g = publisher.publish(Counted(drops.clone(), 2));
        assert_eq!(g, 2);
        assert_eq!(readers[0].get().1, 2);
        // Reader 1 still holds version 1 (never called get): nothing may be dropped.
        assert_eq!(publisher.reclaim(), 1);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        assert_eq!(readers[1].get().1, 2);
        // Both acknowledged: the publisher drops version 1 itself.
        assert_eq!(publisher.reclaim(), 0);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(publisher.wait_visible(g, Duration::from_millis(10)).is_some());
        let g3 = publisher.publish(Counted(drops.clone(), 3));
        assert!(publisher.wait_visible(g3, Duration::from_millis(10)).is_none());
    }

    #[test]
    fn concurrent_reader_never_sees_freed_snapshot() {
        let (mut publisher, mut readers) = channel(vec![0u64; 64], 1);
        let mut reader = readers.pop().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let t = std::thread::spawn(move || {
            let mut last = 0;
            while !stop2.load(Ordering::Relaxed) {
                let snap = reader.get();
                // Every snapshot is uniform; a torn or freed one would not be.
                assert!(snap.iter().all(|v| *v == snap[0]));
                assert!(snap[0] >= last);
                last = snap[0];
            }
            last
        });
        for i in 1..2000u64 {
            publisher.publish(vec![i; 64]);
        }
        stop.store(true, Ordering::Relaxed);
        assert!(t.join().unwrap() > 0);
    }
}
