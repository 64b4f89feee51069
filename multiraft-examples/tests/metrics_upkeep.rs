//! The kv example's Prometheus recorder folds its histograms' samples away on its own,
//! so a node nobody scrapes holds bounded memory. The only test of its binary: it reads
//! the process's resident memory.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusBuilder;
use multiraft_examples::kv::server::keep_metrics_up;
use multiraft_examples::measure::rss_bytes;

/// Samples recorded in all: without an upkeep the recorder keeps each (a value and an
/// instant, 24 bytes and more), 240 MB and more.
const SAMPLES: u64 = 10_000_000;
const ROUNDS: u64 = 20;
/// Resident memory the run may add: a round's samples (12 MB) many times over, a fraction
/// of what keeping them all takes.
const GROWTH_BOUND: u64 = 64 << 20;

#[test]
fn histogram_samples_are_folded_away_without_a_scrape() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let runs = keep_metrics_up(recorder.handle(), Duration::from_millis(10)).unwrap();
    let before = rss_bytes().expect("resident memory");
    metrics::with_local_recorder(&recorder, || {
        let h = metrics::histogram!("kv_test_seconds");
        for _ in 0..ROUNDS {
            let seen = runs.load(Ordering::Relaxed);
            for i in 0..SAMPLES / ROUNDS {
                h.record(i as f64);
            }
            // Until an upkeep has run since this round's samples.
            let deadline = Instant::now() + Duration::from_secs(20);
            while runs.load(Ordering::Relaxed) < seen + 2 {
                assert!(Instant::now() < deadline, "no upkeep ran");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let grown = rss_bytes().expect("resident memory").saturating_sub(before);
    assert!(
        grown < GROWTH_BOUND,
        "resident memory grew {grown} bytes over {SAMPLES} samples"
    );
}
