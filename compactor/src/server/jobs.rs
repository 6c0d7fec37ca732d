//! Queries that outlive a request. SLS answers `Incomplete` when a query did not finish in
//! time, and clients call again with the same parameters; here the query keeps running in
//! the background between those calls, so that every repeated call makes progress and the
//! first one after it finishes gets the whole answer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

type Slot<T> = watch::Receiver<Option<Arc<T>>>;

/// Running and recently finished queries, by their parameters.
#[derive(Debug)]
pub struct Jobs<T> {
    running: Mutex<HashMap<String, (Instant, Slot<T>)>>,
    /// How long a finished result waits for its caller to come back.
    keep: Duration,
}

impl<T: Send + Sync + 'static> Jobs<T> {
    pub fn new(keep: Duration) -> Self {
        Self { running: Mutex::new(HashMap::new()), keep }
    }

    /// The result of the query named `key`, started with `start` if it is not running,
    /// if it finishes within `deadline`; `None` when it is still running.
    pub async fn run<F>(&self, key: String, deadline: Duration, start: impl FnOnce() -> F) -> Option<Arc<T>>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let mut slot = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            let keep = self.keep;
            running.retain(|_, (started, rx)| rx.borrow().is_none() || started.elapsed() < keep);
            match running.get(&key) {
                Some((_, rx)) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    let work = start();
                    tokio::spawn(async move {
                        let result = work.await;
                        let _ = tx.send(Some(Arc::new(result)));
                    });
                    running.insert(key.clone(), (Instant::now(), rx.clone()));
                    rx
                }
            }
        };
        let done = tokio::time::timeout(deadline, slot.wait_for(Option::is_some)).await;
        match done {
            Ok(Ok(result)) => {
                let result = result.clone();
                self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                result
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_query_finishes_between_calls() {
        let jobs: Jobs<u32> = Jobs::new(Duration::from_secs(60));
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            7
        };
        assert_eq!(jobs.run("q".into(), Duration::from_millis(10), slow).await, None);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started_again = || async { 8 };
        assert_eq!(jobs.run("q".into(), Duration::from_millis(10), started_again).await.as_deref(), Some(&7));
        assert_eq!(jobs.run("q".into(), Duration::from_millis(100), || async { 9 }).await.as_deref(), Some(&9));
    }
}
