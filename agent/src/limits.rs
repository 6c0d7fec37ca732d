//! Staying inside the agent's budget, as Logtail's `cpu_usage_limit`, `mem_usage_limit`
//! and `max_bytes_per_sec` do: reading sleeps when the process uses more CPU than
//! allowed, waits for the sender while memory is over the limit, and sends wait when
//! the bandwidth is spent.

use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::metrics::{PipelineMetrics, Registry, process_usage};
use crate::tail::lock;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Cores (0.4 = 40% of one core); 0 for no limit.
    pub cpu_cores: f64,
    /// Resident memory; 0 for no limit.
    pub memory_bytes: u64,
    /// Compressed bytes sent per second, all pipelines together; 0 for no limit.
    pub bytes_per_sec: u64,
}

#[derive(Debug)]
pub struct Governor {
    limits: Limits,
    /// CPU seconds owed, and the process's CPU time when it was last looked at.
    cpu: Mutex<(Bucket, f64)>,
    /// When memory was last looked at.
    memory: Mutex<Instant>,
    bandwidth: Mutex<Bucket>,
    registry: std::sync::Arc<Registry>,
}

/// How often CPU use is measured.
const WINDOW: Duration = Duration::from_millis(250);
/// The longest one sleep for the CPU limit; what is still owed is slept off next time.
const LONGEST_SLEEP: Duration = Duration::from_secs(2);

/// A debt paid back at `rate` a second, with at most a second's worth of credit: the CPU
/// limit (in CPU seconds) and the bandwidth limit (in bytes) alike. The debt outlives a
/// wait cut short, so the long-run average stays at the rate.
#[derive(Debug)]
struct Bucket {
    at: Instant,
    debt: f64,
    rate: f64,
}

impl Bucket {
    fn new(rate: f64) -> Self {
        Self { at: Instant::now(), debt: 0.0, rate }
    }

    /// Adds `spent` at `now`; how long to wait until the debt is paid.
    fn charge(&mut self, now: Instant, spent: f64) -> Duration {
        let paid = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.debt = (self.debt - paid).max(-self.rate) + spent;
        self.at = now;
        if self.debt > 0.0 { Duration::from_secs_f64(self.debt / self.rate) } else { Duration::ZERO }
    }
}

impl Governor {
    pub fn new(limits: Limits, registry: std::sync::Arc<Registry>) -> Self {
        Self {
            limits,
            cpu: Mutex::new((Bucket::new(limits.cpu_cores), process_usage().0)),
            memory: Mutex::new(Instant::now()),
            bandwidth: Mutex::new(Bucket::new(limits.bytes_per_sec as f64)),
            registry,
        }
    }

    /// Called by a collector before it reads: sleeps off CPU used over the limit, and
    /// waits while memory is over its limit and the sender still has work that will
    /// free some (`sender_busy`).
    pub fn throttle(&self, metrics: &PipelineMetrics, sender_busy: bool) {
        if self.limits.cpu_cores > 0.0 {
            let sleep = {
                let mut cpu = lock(&self.cpu);
                let now = Instant::now();
                if now.saturating_duration_since(cpu.0.at) < WINDOW {
                    Duration::ZERO
                } else {
                    let used = process_usage().0;
                    let spent = used - cpu.1;
                    cpu.1 = used;
                    cpu.0.charge(now, spent).min(LONGEST_SLEEP)
                }
            };
            if !sleep.is_zero() {
                self.registry.cpu_throttled_ms.fetch_add(sleep.as_millis() as u64, Ordering::Relaxed);
                std::thread::sleep(sleep);
            }
        }
        let look = {
            let mut at = lock(&self.memory);
            let due = at.elapsed() >= WINDOW;
            if due {
                *at = Instant::now();
            }
            due
        };
        if self.limits.memory_bytes > 0 && sender_busy && look {
            let mut waited = 0;
            while process_usage().1 > self.limits.memory_bytes && waited < 50 {
                PipelineMetrics::set(&metrics.reading_paused, 1);
                std::thread::sleep(Duration::from_millis(100));
                self.registry.memory_throttled_ms.fetch_add(100, Ordering::Relaxed);
                waited += 1;
            }
            PipelineMetrics::set(&metrics.reading_paused, 0);
        }
    }

    /// Counts `bytes` sent and waits while the sending is ahead of the allowed rate.
    pub async fn bandwidth(&self, bytes: u64) {
        if self.limits.bytes_per_sec == 0 {
            return;
        }
        let wait = lock(&self.bandwidth).charge(Instant::now(), bytes as f64);
        if !wait.is_zero() {
            self.registry.bandwidth_throttled_ms.fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bandwidth_spreads_sends_over_time() {
        let g = Governor::new(
            Limits { cpu_cores: 0.0, memory_bytes: 0, bytes_per_sec: 10_000_000 },
            std::sync::Arc::new(Registry::default()),
        );
        let start = Instant::now();
        // 2.3 MB at 10 MB/s: sleeping makes up at least 0.2 s of it.
        for _ in 0..13 {
            g.bandwidth(100_000).await;
        }
        g.bandwidth(1_000_000).await;
        assert!(start.elapsed() >= Duration::from_millis(200), "{:?}", start.elapsed());
    }

    /// A wait cut short leaves its rest owed: the average stays at the rate however the
    /// waits are cut, and idle time earns at most a second of credit.
    #[test]
    fn a_debt_outlives_a_shortened_wait() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut cpu = Bucket { at: t0, debt: 0.0, rate: 0.1 };
        // A quarter second of a whole core, at a tenth of a core: 2.25 s to pay back.
        assert_eq!(cpu.charge(at(250), 0.25), Duration::from_millis(2250));
        // Slept 2 s of it (the longest sleep): a quarter second is still owed.
        let rest = cpu.charge(at(2250), 0.0);
        assert!((rest.as_secs_f64() - 0.25).abs() < 1e-9, "{rest:?}");
        // An idle minute earns one second's worth, not sixty.
        assert_eq!(cpu.charge(at(62_250), 0.0), Duration::ZERO);
        assert_eq!(cpu.charge(at(62_250), 0.1), Duration::ZERO);
        assert!(cpu.charge(at(62_250), 0.01) > Duration::ZERO);
    }
}
