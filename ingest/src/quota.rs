//! Write quotas: a token bucket of raw bytes per logstore.
//!
//! The buckets are state the edge keeps (one per process or isolate); the core only asks
//! them whether a request of so many bytes may pass now.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::Target;
use crate::time::NANOS_PER_SEC;

/// Decides whether a write of `bytes` to `target` fits its quota.
pub trait Admission {
    fn admit(&self, target: &Target, bytes: usize, bytes_per_sec: f64, now_ns: i64) -> bool;
}

/// No quotas at all.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unlimited;

impl Admission for Unlimited {
    fn admit(&self, _: &Target, _: usize, _: f64, _: i64) -> bool {
        true
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated_ns: i64,
}

/// One token bucket per logstore. A bucket holds at most one second of quota, and a
/// request larger than that passes when the bucket is full (so that no request is
/// refused forever).
#[derive(Debug, Default)]
pub struct TokenBuckets {
    buckets: HashMap<Target, Bucket>,
}

impl TokenBuckets {
    pub fn admit(&mut self, target: &Target, bytes: usize, bytes_per_sec: f64, now_ns: i64) -> bool {
        let bucket = self.buckets.entry(target.clone()).or_insert(Bucket { tokens: bytes_per_sec, updated_ns: now_ns });
        let elapsed = (now_ns - bucket.updated_ns).max(0) as f64 / NANOS_PER_SEC as f64;
        bucket.tokens = (bucket.tokens + elapsed * bytes_per_sec).min(bytes_per_sec);
        bucket.updated_ns = bucket.updated_ns.max(now_ns);
        let cost = (bytes as f64).min(bytes_per_sec);
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            true
        } else {
            false
        }
    }
}

impl Admission for Mutex<TokenBuckets> {
    fn admit(&self, target: &Target, bytes: usize, bytes_per_sec: f64, now_ns: i64) -> bool {
        // A poisoned lock only means another request panicked mid-update; the buckets
        // are still usable numbers.
        let mut buckets = self.lock().unwrap_or_else(|e| e.into_inner());
        buckets.admit(target, bytes, bytes_per_sec, now_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_over_time() {
        let target = Target { project: "p".into(), logstore: "l".into() };
        let mut buckets = TokenBuckets::default();
        assert!(buckets.admit(&target, 600, 1000.0, 0));
        assert!(!buckets.admit(&target, 600, 1000.0, 0));
        assert!(buckets.admit(&target, 600, 1000.0, NANOS_PER_SEC / 5));
        assert!(!buckets.admit(&target, 600, 1000.0, NANOS_PER_SEC / 5));
        assert!(buckets.admit(&target, 5000, 1000.0, 10 * NANOS_PER_SEC), "oversized requests pass a full bucket");
    }
}
