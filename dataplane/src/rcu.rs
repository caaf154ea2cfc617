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

/// A reader's acknowledged generation and when it switched to it (nanoseconds since the
/// channel's epoch), alone on their cache line: only its worker writes them.
#[repr(align(64))]
struct ReaderSlot {
    generation: AtomicU64,
    switched_ns: AtomicU64,
}

struct Shared<T> {
    /// Where readers' switch times count from.
    epoch: Instant,
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
    /// When the last `publish` made its snapshot current.
    published_at: Instant,
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
        epoch: Instant::now(),
        generation: AtomicU64::new(1),
        current: Mutex::new(initial.clone()),
        readers: (0..readers)
            .map(|_| ReaderSlot { generation: AtomicU64::new(1), switched_ns: AtomicU64::new(0) })
            .collect(),
    });
    let rs =
        (0..readers).map(|slot| Reader { shared: shared.clone(), local: initial.clone(), seen: 1, slot }).collect();
    (Publisher { shared, retired: Vec::new(), published_at: Instant::now() }, rs)
}

impl<T> Publisher<T> {
    /// Makes `next` current and returns its generation. Workers pick it up at their next
    /// burst boundary.
    pub fn publish(&mut self, next: T) -> u64 {
        let next = Arc::new(next);
        let old = std::mem::replace(&mut *self.shared.current.lock(), next);
        // Bumped after the snapshot is in place (and the lock released, so no reader that
        // sees it waits for us): a reader that sees generation g and then locks gets g's
        // snapshot or a newer one, never an older one.
        let generation = self.shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.published_at = Instant::now();
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
        self.shared.readers.iter().map(|r| r.generation.load(Ordering::Acquire)).min().unwrap_or(u64::MAX)
    }

    /// Drops retired snapshots no reader can hold any more. Returns how many remain.
    pub fn reclaim(&mut self) -> usize {
        let min_seen = self.min_seen();
        self.retired.retain(|(replaced_at, _)| *replaced_at > min_seen);
        self.retired.len()
    }

    /// Waits until every reader uses `generation` (the last one published) or later; returns
    /// the time from its publication until the last reader switched, as the readers recorded
    /// it (so a publisher that is slow to look does not inflate it), or None on timeout (a
    /// reader that is not polling, e.g. a stalled worker).
    pub fn wait_visible(&mut self, generation: u64, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        loop {
            if self.min_seen() >= generation {
                self.reclaim();
                let last_switch = self.shared.readers.iter().map(|r| r.switched_ns.load(Ordering::Acquire)).max();
                let last_switch = self.shared.epoch + Duration::from_nanos(last_switch.unwrap_or(0));
                return Some(last_switch.saturating_duration_since(self.published_at));
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
        self.switch_to(generation)
    }

    /// The snapshot picked up by the last `get` or `refresh`.
    #[inline]
    pub fn current(&self) -> &Arc<T> {
        &self.local
    }

    /// False when the publisher holds the lock right now: a worker never waits for the
    /// control thread (which may be descheduled while holding it); it tries again next burst.
    #[cold]
    fn switch_to(&mut self, generation: u64) -> bool {
        let Some(current) = self.shared.current.try_lock() else { return false };
        // The publisher keeps the replaced snapshot in `retired` until this reader's
        // acknowledgement below, so this assignment never runs a destructor here.
        self.local = current.clone();
        drop(current);
        self.seen = generation;
        let slot = &self.shared.readers[self.slot];
        // A clock read per configuration change, not per packet; stored before the
        // generation, which publishes it.
        slot.switched_ns.store(self.shared.epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
        slot.generation.store(generation, Ordering::Release);
        true
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
    fn visible_delay_is_the_last_readers_switch_not_when_the_publisher_looks() {
        let (mut publisher, mut readers) = channel(0u32, 2);
        let g = publisher.publish(1);
        readers[0].refresh();
        std::thread::sleep(Duration::from_millis(20));
        readers[1].refresh();
        // The publisher looks only now, 40 ms after the last switch.
        std::thread::sleep(Duration::from_millis(40));
        let took = publisher.wait_visible(g, Duration::from_millis(10)).unwrap();
        assert!(took >= Duration::from_millis(20) && took < Duration::from_millis(60), "{took:?}");
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
