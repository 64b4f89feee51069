//! What the benchmark programs read about the process and the machine, and how they sum up
//! runs and latencies. Memory readings are Linux only (`/proc`); elsewhere they are
//! `None`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// User plus system CPU time of this process so far, in seconds, to the nanosecond
/// (`CLOCK_PROCESS_CPUTIME_ID`). `/proc/self/stat` counts it in ticks of 10 ms, which made
/// an idle reading of a few ticks (a million quiet groups for 20 s) a figure of ±1 tick,
/// up to a sixth of it (review).
pub fn process_cpu_secs() -> Option<f64> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Some(t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9)
}

/// Resident set size of this process, in bytes.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Peak resident set size of this process (`VmHWM` in `/proc/self/status`), in bytes: since
/// it started, or since the last [`reset_peak_rss`].
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Resets the peak resident set size ([`peak_rss_bytes`]) to the current one, so the next
/// reading is the peak of what follows (Linux 4.0 and later: `5` to
/// `/proc/self/clear_refs`).
pub fn reset_peak_rss() -> std::io::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")
}

/// The mean time, in nanoseconds, of up to `trips` round trips of one cache line between
/// two threads, stopping early once `within` has passed: this thread writes odd values to
/// an atomic, another answers each with the next even one, both spinning. How far apart the
/// machine's cores are now: the 2-core machines of BENCHMARKS.md have two levels, 56–135 ns
/// and 360–420 ns, switching within seconds, and a benchmark that moves data between its
/// threads runs at about half its speed in the slow one.
///
/// With fewer than two cores free the threads share one: each wait then yields after a
/// thousand spins, so that a trip costs a switch between threads rather than a time slice,
/// and the figure is the scheduler's, not the cores'. `within` bounds the time either way
/// (checked every 64 trips; a loaded test machine).
pub fn core_round_trip_ns(trips: u64, within: Duration) -> f64 {
    /// Written instead of the next odd value: the answerer stops.
    const STOP: u64 = u64::MAX;
    let trips = trips.max(1);
    let line = Arc::new(AtomicU64::new(0));
    let other = Arc::clone(&line);
    let answerer = std::thread::spawn(move || {
        for i in 0..trips {
            let ask = 2 * i + 1;
            if wait_for(&other, |v| v == ask || v == STOP) == STOP {
                return;
            }
            other.store(ask + 1, Ordering::Release);
        }
    });
    let start = Instant::now();
    let mut done = 0;
    while done < trips {
        line.store(2 * done + 1, Ordering::Release);
        wait_for(&line, |v| v == 2 * done + 2);
        done += 1;
        if done % 64 == 0 && start.elapsed() >= within {
            break;
        }
    }
    let elapsed = start.elapsed();
    if done < trips {
        line.store(STOP, Ordering::Release);
    }
    // The answerer ends with its last answer, which this thread has just seen, or at STOP.
    let _ = answerer.join();
    elapsed.as_nanos() as f64 / done as f64
}

/// Spins waited in [`core_round_trip_ns`] before each wait yields the thread: far more
/// than a trip between two free cores takes (a few hundred nanoseconds).
const SPINS_BEFORE_YIELD: u32 = 1_000;

/// Waits until `line` holds a value that `done` accepts, and returns it.
fn wait_for(line: &AtomicU64, done: impl Fn(u64) -> bool) -> u64 {
    let mut spins = 0u32;
    loop {
        let v = line.load(Ordering::Acquire);
        if done(v) {
            return v;
        }
        if spins < SPINS_BEFORE_YIELD {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// The 1-minute load average, to report how busy the machine was ("n/a" if unknown).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "n/a".into())
}

/// The median of `values` (the upper one of an even count); 0 for none.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// A histogram (an HdrHistogram with 3 significant figures) of `values`, e.g. latencies
/// in nanoseconds ([`nanos`]) or microseconds. Programs collect raw values while they
/// measure and build the histogram at the end: thousands of client tasks each holding a
/// histogram would take far more memory than their values.
pub fn histogram(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
    let mut h = Histogram::new(3).expect("3 significant figures is a valid precision");
    for v in values {
        record(&mut h, v);
    }
    h
}

/// Adds `v` to `h`, which grows to fit; a value beyond what it can ever track is clamped
/// (`saturating_record` alone would clamp to the histogram's current range).
pub fn record(h: &mut Histogram<u64>, v: u64) {
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

/// The latencies one client task measures, in microseconds, added to a histogram that
/// every client shares once [`LatencyBuffer::CAPACITY`] of them have gathered, and when
/// the buffer is flushed or dropped. Memory stays bounded however long the run (a vector of
/// every latency grew by half a gigabyte in ten minutes, and showed as the node's, and its
/// growth cost the benchmark's clients CPU the library was charged for), and the lock is
/// taken once per `CAPACITY` values.
pub struct LatencyBuffer {
    shared: Arc<Mutex<Histogram<u64>>>,
    buffer: Vec<u32>,
}

impl LatencyBuffer {
    /// Latencies a client keeps before adding them to the shared histogram.
    pub const CAPACITY: usize = 1024;

    /// An empty buffer flushing into `shared` (a histogram of microseconds).
    pub fn new(shared: Arc<Mutex<Histogram<u64>>>) -> Self {
        LatencyBuffer {
            shared,
            buffer: Vec::with_capacity(Self::CAPACITY),
        }
    }

    /// Records `count` operations that each took `latency`.
    pub fn record(&mut self, latency: Duration, count: usize) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.buffer.extend(std::iter::repeat_n(us, count));
        if self.buffer.len() >= Self::CAPACITY {
            self.flush();
        }
    }

    /// Adds what the buffer holds to the shared histogram.
    pub fn flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        if let Ok(mut h) = self.shared.lock() {
            for v in self.buffer.drain(..) {
                record(&mut h, u64::from(v));
            }
        }
    }
}

impl Drop for LatencyBuffer {
    fn drop(&mut self) {
        self.flush();
    }
}

/// `d` in whole nanoseconds (saturating at `u64::MAX`).
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `d` in whole microseconds (saturating at `u64::MAX`).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The value at quantile `q` (0.5 for the median, 0.99 for p99) of a histogram of
/// nanoseconds, as a duration; zero for an empty histogram.
pub fn quantile(h: &Histogram<u64>, q: f64) -> Duration {
    Duration::from_nanos(h.value_at_quantile(q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), 3.0);
        assert_eq!(median([]), 0.0);
    }

    #[test]
    fn histogram_quantiles_are_within_its_precision() {
        assert_eq!(quantile(&histogram([]), 0.5), Duration::ZERO);
        let values = (1..=1_000u64)
            .map(Duration::from_micros)
            .chain([Duration::from_secs(10)]);
        let h = histogram(values.map(nanos));
        assert_eq!(h.len(), 1_001);
        let near = |d: Duration, us: f64| (d.as_secs_f64() * 1e6 - us).abs() <= us * 1e-3;
        assert!(near(quantile(&h, 0.5), 501.0), "{:?}", quantile(&h, 0.5));
        assert!(near(quantile(&h, 0.99), 991.0), "{:?}", quantile(&h, 0.99));
        assert!(near(quantile(&h, 1.0), 10e6), "{:?}", quantile(&h, 1.0));
    }

    /// Asked for more trips than could ever run, the measurement stops once its time is up
    /// (checked every 64 trips, each at most a thread switch on a loaded machine) and
    /// gives the mean of the trips it made.
    #[test]
    fn a_round_trip_measurement_stops_when_its_time_is_up() {
        let started = Instant::now();
        let ns = core_round_trip_ns(u64::MAX, Duration::from_millis(50));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "took {took:?}");
        assert!(ns.is_finite() && ns > 0.0, "{ns}");
        // A handful of trips, counted in full.
        let ns = core_round_trip_ns(3, Duration::from_secs(10));
        assert!(ns.is_finite() && ns > 0.0, "{ns}");
    }

    #[test]
    fn proc_readings_are_present_and_sane_on_linux() {
        if cfg!(target_os = "linux") {
            let rss = rss_bytes().unwrap();
            assert!(rss > 0);
            let peak = peak_rss_bytes().unwrap();
            assert!(peak >= rss, "peak {peak} below an earlier RSS {rss}");
            if reset_peak_rss().is_ok() {
                // Other tests of this process allocate meanwhile, so the new peak may pass
                // the old one; but it never falls below the RSS read after the reset.
                let rss = rss_bytes().unwrap();
                let peak = peak_rss_bytes().unwrap();
                assert!(
                    peak >= rss,
                    "peak {peak} below the RSS {rss} read after the reset"
                );
            }
            assert!(process_cpu_secs().is_some_and(|s| s >= 0.0));
            assert_ne!(load_average(), "n/a");
        }
    }
}
