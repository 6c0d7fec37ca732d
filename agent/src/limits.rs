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
    cpu: Mutex<(Instant, f64)>,
    /// When memory was last looked at.
    memory: Mutex<Instant>,
    bucket: Mutex<(Instant, f64)>,
    registry: std::sync::Arc<Registry>,
}

/// How often CPU use is measured.
const WINDOW: Duration = Duration::from_millis(250);

impl Governor {
    pub fn new(limits: Limits, registry: std::sync::Arc<Registry>) -> Self {
        let now = Instant::now();
        Self {
            limits,
            cpu: Mutex::new((now, process_usage().0)),
            memory: Mutex::new(now),
            bucket: Mutex::new((now, 0.0)),
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
                let elapsed = cpu.0.elapsed();
                if elapsed < WINDOW {
                    Duration::ZERO
                } else {
                    let used = process_usage().0;
                    let rate = (used - cpu.1) / elapsed.as_secs_f64();
                    *cpu = (Instant::now(), used);
                    if rate > self.limits.cpu_cores {
                        // Sleep long enough that the window's average comes down to the limit.
                        elapsed.mul_f64(rate / self.limits.cpu_cores - 1.0).min(Duration::from_secs(2))
                    } else {
                        Duration::ZERO
                    }
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
        let wait = {
            let mut b = lock(&self.bucket);
            let rate = self.limits.bytes_per_sec as f64;
            // The debt, paid back at `rate`; at most a second of credit is kept.
            let now = Instant::now();
            let paid = now.duration_since(b.0).as_secs_f64() * rate;
            b.1 = (b.1 - paid).max(-rate) + bytes as f64;
            b.0 = now;
            if b.1 > 0.0 { Duration::from_secs_f64(b.1 / rate) } else { Duration::ZERO }
        };
        if !wait.is_zero() {
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
}
