//! A load generator for a kv cluster: closed-loop clients doing puts and gets over HTTP,
//! a progress line each second and a summary of throughput and latency percentiles.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use multiraft_testkit::sim::SimRng;

use super::client::{ClientError, KvClient};

/// What `kv load` is asked to do.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The nodes' HTTP base URLs; client `i` talks to `urls[i % len]`.
    pub urls: Vec<String>,
    /// Concurrent clients, each with one request outstanding.
    pub clients: usize,
    /// How long to run.
    pub duration: Duration,
    /// Keys written and read (`key-0` ..).
    pub keys: u64,
    /// Percentage of requests that are puts; the rest are gets.
    pub write_percent: u8,
    /// Bytes per value.
    pub value_bytes: usize,
    /// Print a progress line every second.
    pub progress: bool,
}

/// What a load run measured.
#[derive(Clone, Debug)]
pub struct LoadSummary {
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that definitely failed.
    pub failed: u64,
    /// Requests whose outcome is unknown.
    pub indeterminate: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latencies of successful requests, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl LoadSummary {
    /// Successful requests per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at `quantile` (0–1), in milliseconds.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }
}

impl std::fmt::Display for LoadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ok in {:.1} s: {:.0} ops/s; latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; {} failed, {} indeterminate",
            self.ok,
            self.elapsed.as_secs_f64(),
            self.ops_per_sec(),
            self.latency_ms(0.5),
            self.latency_ms(0.99),
            self.latency_ms(0.999),
            self.latency_us.max() as f64 / 1000.0,
            self.failed,
            self.indeterminate
        )
    }
}

/// Runs the load and sums it up.
pub async fn run(options: LoadOptions) -> Result<LoadSummary, String> {
    if options.urls.is_empty() || options.clients == 0 || options.keys == 0 {
        return Err("load needs at least one URL, one client and one key".into());
    }
    let ok = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + options.duration;
    let value = "x".repeat(options.value_bytes);
    let mut tasks = Vec::new();
    for i in 0..options.clients {
        let client = KvClient::new(
            options.urls[i % options.urls.len()].clone(),
            Duration::from_secs(5),
        )?;
        let ok = Arc::clone(&ok);
        let value = value.clone();
        let keys = options.keys;
        let writes = u64::from(options.write_percent);
        tasks.push(tokio::spawn(async move {
            let mut latency = Histogram::<u64>::new(3).expect("3 significant figures is valid");
            let (mut failed, mut indeterminate) = (0u64, 0u64);
            // Per client: the key and the kind of each request.
            let mut rng = SimRng::new(i as u64 + 1);
            while Instant::now() < deadline {
                let key = format!("key-{}", rng.below(keys));
                let begun = Instant::now();
                let result = if rng.below(100) < writes {
                    client.put(&key, &value).await.map(drop)
                } else {
                    client.get(&key).await.map(drop)
                };
                match result {
                    Ok(()) => {
                        let _ = latency.record(begun.elapsed().as_micros() as u64);
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(ClientError::Definite(_)) => failed += 1,
                    Err(ClientError::Indeterminate(_)) => indeterminate += 1,
                }
            }
            (latency, failed, indeterminate)
        }));
    }
    let progress = options.progress.then(|| {
        let ok = Arc::clone(&ok);
        tokio::spawn(async move {
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = ok.load(Ordering::Relaxed);
                eprint!(
                    "\r{:>5.1} s  {:>9} ok  {:>8} ops/s   ",
                    started.elapsed().as_secs_f64(),
                    now,
                    now - last
                );
                last = now;
            }
        })
    });
    let mut latency_us = Histogram::<u64>::new(3).expect("3 significant figures is valid");
    let (mut failed, mut indeterminate) = (0, 0);
    for t in tasks {
        let (h, f, i) = t.await.map_err(|e| e.to_string())?;
        latency_us.add(h).map_err(|e| e.to_string())?;
        failed += f;
        indeterminate += i;
    }
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    Ok(LoadSummary {
        ok: ok.load(Ordering::Relaxed),
        failed,
        indeterminate,
        elapsed: started.elapsed(),
        latency_us,
    })
}
