//! Queries that outlive a request, within bounds.
//!
//! SLS answers `Incomplete` when a query did not finish in time, and clients call again
//! with the same parameters; here the query keeps running between those calls, so that
//! every repeated call makes progress and the first one after it finishes gets the whole
//! answer. A repeated call joins the running query; it never starts a second one.
//!
//! Every query runs on the query runtime (threads of its own, so that queries never
//! delay ingest), holds a [`Permit`] of the [`Limiter`] while it runs (at most so many at
//! once per server and per credential), and is cancelled when it reaches its budget: its
//! future is dropped, which stops every DataFusion task under it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::watch;

/// How a query ended, or that it is still running.
#[derive(Debug)]
pub enum Outcome<T> {
    Done(Arc<T>),
    /// Still running after the wait: answer `Incomplete` (or wait again).
    Running,
    /// Not started: too many queries at once.
    Busy(String),
    /// Cancelled at its budget.
    Cancelled(Duration),
}

/// What a finished job left: its result, or the budget it was cancelled at.
type Finished<T> = Result<Arc<T>, Duration>;
type Slot<T> = watch::Receiver<Option<Finished<T>>>;

/// Counts running queries per server and per credential.
#[derive(Debug)]
pub struct Limiter {
    per_server: usize,
    per_credential: usize,
    running: Mutex<HashMap<String, usize>>,
}

/// A running query's place; dropping it frees the place.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Limiter>,
    credential: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut running = self.limiter.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = running.get_mut(&self.credential) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.credential);
            }
        }
    }
}

impl Limiter {
    pub fn new(per_server: usize, per_credential: usize) -> Arc<Self> {
        Arc::new(Self {
            per_server: per_server.max(1),
            per_credential: per_credential.max(1),
            running: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more query of `credential`, or why there is none.
    pub fn acquire(self: &Arc<Self>, credential: &str) -> Result<Permit, String> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = running.values().sum();
        if total >= self.per_server {
            return Err(format!(
                "the server is running {total} queries, its limit ([query] max_concurrent): retry later"
            ));
        }
        let mine = running.get(credential).copied().unwrap_or(0);
        if mine >= self.per_credential {
            return Err(format!(
                "this credential is running {mine} queries, its limit ([query] max_concurrent_per_credential): retry later"
            ));
        }
        *running.entry(credential.to_owned()).or_default() += 1;
        Ok(Permit { limiter: self.clone(), credential: credential.to_owned() })
    }

    /// Queries running now.
    pub fn running(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).values().sum()
    }
}

/// Finished results kept for callers that come back, at most.
const KEEP_FINISHED: usize = 64;

/// Running and recently finished queries of one kind, by their parameters.
#[derive(Debug)]
pub struct Jobs<T> {
    running: Mutex<HashMap<String, (Instant, Slot<T>)>>,
    /// How long a finished result waits for its caller to come back.
    keep: Duration,
    limiter: Arc<Limiter>,
    runtime: Handle,
    /// A query is cancelled after this long.
    budget: Duration,
}

impl<T: Send + Sync + 'static> Jobs<T> {
    pub fn new(keep: Duration, limiter: Arc<Limiter>, runtime: Handle, budget: Duration) -> Self {
        Self { running: Mutex::new(HashMap::new()), keep, limiter, runtime, budget }
    }

    /// The outcome of the query named `key` (started with `start` for `credential`
    /// unless it is running already) if it ends within `wait`.
    pub async fn run<F>(&self, key: String, credential: &str, wait: Duration, start: impl FnOnce() -> F) -> Outcome<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let mut slot = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            let keep = self.keep;
            running.retain(|_, (started, rx)| rx.borrow().is_none() || started.elapsed() < keep);
            let finished = running.iter().filter(|(_, (_, rx))| rx.borrow().is_some()).count();
            if finished > KEEP_FINISHED
                && let Some(oldest) = running
                    .iter()
                    .filter(|(_, (_, rx))| rx.borrow().is_some())
                    .min_by_key(|(_, (started, _))| *started)
                    .map(|(k, _)| k.clone())
            {
                running.remove(&oldest);
            }
            match running.get(&key) {
                Some((_, rx)) => rx.clone(),
                None => {
                    let permit = match self.limiter.acquire(credential) {
                        Ok(permit) => permit,
                        Err(why) => return Outcome::Busy(why),
                    };
                    let (tx, rx) = watch::channel(None);
                    let work = start();
                    let budget = self.budget;
                    self.runtime.spawn(async move {
                        let finished = match tokio::time::timeout(budget, work).await {
                            Ok(result) => Ok(Arc::new(result)),
                            Err(_) => Err(budget),
                        };
                        // The place is free before the result is seen.
                        drop(permit);
                        let _ = tx.send(Some(finished));
                    });
                    running.insert(key.clone(), (Instant::now(), rx.clone()));
                    rx
                }
            }
        };
        let done = tokio::time::timeout(wait, slot.wait_for(Option::is_some)).await;
        let finished = match done {
            Ok(Ok(finished)) => finished.clone(),
            _ => return Outcome::Running,
        };
        self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
        match finished {
            Some(Ok(result)) => Outcome::Done(result),
            Some(Err(budget)) => Outcome::Cancelled(budget),
            None => Outcome::Running,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(per_server: usize, per_credential: usize, budget: Duration) -> Jobs<u32> {
        Jobs::new(Duration::from_secs(60), Limiter::new(per_server, per_credential), Handle::current(), budget)
    }

    fn done(outcome: Outcome<u32>) -> Option<u32> {
        match outcome {
            Outcome::Done(v) => Some(*v),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_slow_query_finishes_between_calls() {
        let jobs = jobs(4, 4, Duration::from_secs(60));
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            7
        };
        assert!(matches!(jobs.run("q".into(), "a", Duration::from_millis(10), slow).await, Outcome::Running));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started_again = || async { 8 };
        assert_eq!(done(jobs.run("q".into(), "a", Duration::from_millis(10), started_again).await), Some(7));
        assert_eq!(done(jobs.run("q".into(), "a", Duration::from_millis(100), || async { 9 }).await), Some(9));
    }

    #[tokio::test]
    async fn queries_over_their_budget_are_cancelled_and_free_their_place() {
        let jobs = jobs(1, 1, Duration::from_millis(50));
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        struct Flag(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let flag = Flag(dropped.clone());
        let forever = move || async move {
            let _flag = flag;
            std::future::pending::<()>().await;
            1
        };
        assert!(matches!(jobs.run("a".into(), "k", Duration::from_millis(1), forever).await, Outcome::Running));
        // The server's one place is taken: another query waits its turn.
        assert!(matches!(
            jobs.run("b".into(), "other", Duration::from_millis(1), || async { 2 }).await,
            Outcome::Busy(_)
        ));
        assert!(matches!(
            jobs.run("a".into(), "k", Duration::from_secs(5), || async { 3 }).await,
            Outcome::Cancelled(_)
        ));
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst), "the work was dropped, not left running");
        assert_eq!(jobs.limiter.running(), 0);
        assert_eq!(done(jobs.run("b".into(), "other", Duration::from_secs(5), || async { 2 }).await), Some(2));
    }

    #[tokio::test]
    async fn each_credential_has_its_share() {
        let limiter = Limiter::new(3, 2);
        let a1 = limiter.acquire("a").unwrap();
        let _a2 = limiter.acquire("a").unwrap();
        assert!(limiter.acquire("a").unwrap_err().contains("per_credential"));
        let _b = limiter.acquire("b").unwrap();
        assert!(limiter.acquire("c").unwrap_err().contains("max_concurrent"));
        drop(a1);
        assert!(limiter.acquire("c").is_ok());
    }
}
