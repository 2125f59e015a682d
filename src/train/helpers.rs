//! Helper threads for split training steps, handed their work by spinning.
//!
//! A step of a small network takes a few µs. Handing half of it to another
//! thread through a queue and a sleeping worker costs more than that on a
//! virtual machine (waking an idle vCPU takes tens of µs; measured with
//! rayon's scopes: a 64-32-10 step at batch 32 took 15 µs split against
//! 13.5 µs on one thread). These helpers instead spin on an atomic counter
//! for a while after each job, so the next job, a few µs later, starts at
//! once; after [`SPIN`] without work they park, and are unparked by the
//! next job.
//!
//! The jobs borrow the caller's data: [`Helpers::run`] returns only once
//! every job has finished (also when the caller's own part panics), which
//! is what makes handing a borrowed closure to another thread sound.

use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a helper spins for its next job before it parks.
pub const SPIN: Duration = Duration::from_micros(200);

/// A job as the helper sees it: the caller's closure with its lifetime
/// erased (see [`Helpers::run`] for why that is sound).
type Job = *mut (dyn FnMut() + Send);

/// One helper's mailbox.
struct Slot {
    /// Jobs posted so far; the helper runs job `posted` when it is ahead
    /// of `finished`.
    posted: AtomicUsize,
    /// Jobs finished so far.
    finished: AtomicUsize,
    /// The job of number `posted`, written by the caller before it bumps
    /// `posted` and read by the helper after it sees the bump.
    job: UnsafeCell<Option<Job>>,
    /// Set by the helper before it parks, so the caller knows to unpark it.
    parked: AtomicBool,
    /// Whether the last job panicked.
    panicked: AtomicBool,
    /// Tells the helper to exit.
    stop: AtomicBool,
}

// SAFETY: `job` is written only by the caller while the helper is idle
// (`finished == posted`) and read only by the helper after `posted` moved
// past `finished`; the SeqCst counters order the two.
unsafe impl Sync for Slot {}
// SAFETY: as above; the job pointer is only dereferenced under that protocol.
unsafe impl Send for Slot {}

/// A set of helper threads (one per extra share of a split step).
pub struct Helpers {
    slots: Vec<Arc<Slot>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Helpers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Helpers({})", self.slots.len())
    }
}

/// Why helpers could not start.
#[derive(Debug)]
pub struct SpawnError(pub std::io::Error);

impl Helpers {
    /// Starts `n` helper threads.
    pub fn new(n: usize) -> Result<Helpers, SpawnError> {
        let mut helpers = Helpers {
            slots: Vec::new(),
            threads: Vec::new(),
        };
        for i in 0..n {
            let slot = Arc::new(Slot {
                posted: AtomicUsize::new(0),
                finished: AtomicUsize::new(0),
                job: UnsafeCell::new(None),
                parked: AtomicBool::new(false),
                panicked: AtomicBool::new(false),
                stop: AtomicBool::new(false),
            });
            let mine = Arc::clone(&slot);
            let thread = std::thread::Builder::new()
                .name(format!("slope-helper-{i}"))
                .spawn(move || serve(&mine))
                .map_err(SpawnError)?;
            helpers.slots.push(slot);
            helpers.threads.push(thread);
        }
        Ok(helpers)
    }

    /// How many helpers there are.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Runs `jobs[i]` on helper `i` (at most [`Helpers::len`] jobs) while
    /// this thread runs `own`, and returns when all have finished. Returns
    /// false when a job panicked.
    pub fn run<J: FnMut() + Send>(&self, jobs: &mut [J], own: impl FnOnce()) -> bool {
        assert!(jobs.len() <= self.slots.len(), "more jobs than helpers");
        let wait = Wait {
            slots: &self.slots[..jobs.len()],
        };
        for ((slot, job), thread) in self.slots.iter().zip(jobs.iter_mut()).zip(&self.threads) {
            let job: *mut (dyn FnMut() + Send + '_) = job;
            // SAFETY: only the lifetime is erased; `wait` (dropped before
            // this function returns or unwinds) blocks until the helper has
            // finished with the job, so it never outlives the borrow.
            let job: Job = unsafe { std::mem::transmute(job) };
            // SAFETY: the helper is idle (every earlier `run` waited for
            // it), so nothing reads the cell while it is written.
            unsafe { *slot.job.get() = Some(job) };
            slot.posted.fetch_add(1, SeqCst);
            if slot.parked.load(SeqCst) {
                thread.thread().unpark();
            }
        }
        own();
        drop(wait);
        let panicked = self.slots.iter().any(|s| s.panicked.swap(false, SeqCst));
        !panicked
    }
}

/// Waits, on drop, until every slot's helper has finished its job.
struct Wait<'a> {
    slots: &'a [Arc<Slot>],
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        for slot in self.slots {
            let mut spins = 0u32;
            while slot.finished.load(SeqCst) != slot.posted.load(SeqCst) {
                spins = spins.saturating_add(1);
                if spins < 1 << 16 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
    }
}

impl Drop for Helpers {
    fn drop(&mut self) {
        for (slot, thread) in self.slots.iter().zip(&self.threads) {
            slot.stop.store(true, SeqCst);
            thread.thread().unpark();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A helper's loop: spin for the next job, park when none comes for
/// [`SPIN`], run each job once, exit on `stop`.
fn serve(slot: &Slot) {
    let mut done = 0usize;
    loop {
        let mut since = Instant::now();
        let mut spins = 0u32;
        while slot.posted.load(SeqCst) == done {
            if slot.stop.load(SeqCst) {
                return;
            }
            spins = spins.wrapping_add(1);
            std::hint::spin_loop();
            if spins.is_multiple_of(1024) && since.elapsed() > SPIN {
                slot.parked.store(true, SeqCst);
                if slot.posted.load(SeqCst) == done && !slot.stop.load(SeqCst) {
                    std::thread::park();
                }
                slot.parked.store(false, SeqCst);
                since = Instant::now();
            }
        }
        // SAFETY: `posted` moved past `done`, so the caller has written
        // the job and waits for `finished` before touching the cell or the
        // closure's borrows again.
        let job = unsafe { *slot.job.get() };
        if let Some(job) = job {
            // SAFETY: the closure is alive until `finished` is bumped below.
            let ok = catch_unwind(AssertUnwindSafe(|| unsafe { (*job)() })).is_ok();
            if !ok {
                slot.panicked.store(true, SeqCst);
            }
        }
        done += 1;
        slot.finished.store(done, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_helpers_and_borrow_the_callers_data() {
        let helpers = Helpers::new(2).unwrap();
        let mut out = [0u64; 3];
        for round in 0..1000u64 {
            let [a, b, c] = &mut out;
            let mut jobs = [(b, 1), (c, 2)].map(|(v, k)| move || *v += k * round);
            assert!(helpers.run(&mut jobs, || *a += 1));
        }
        assert_eq!(out, [1000, 499_500, 999_000]);
    }

    #[test]
    fn a_parked_helper_wakes_for_the_next_job() {
        let helpers = Helpers::new(1).unwrap();
        let mut x = 0;
        std::thread::sleep(SPIN * 5);
        assert!(helpers.run(&mut [|| x += 1], || {}));
        assert_eq!(x, 1);
    }

    #[test]
    fn a_panicking_job_is_reported_and_the_helper_stays_usable() {
        let helpers = Helpers::new(1).unwrap();
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        assert!(!helpers.run(&mut [|| panic!("boom")], || {}));
        std::panic::set_hook(prev);
        let mut x = 0;
        assert!(helpers.run(&mut [|| x = 7], || {}));
        assert_eq!(x, 7);
    }
}
