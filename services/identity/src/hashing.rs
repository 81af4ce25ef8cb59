//! Password hashing off the runtime, bounded. An argon2id hash takes 19 MiB and tens of
//! milliseconds of a core, so an unbounded burst of unauthenticated sign-ins could take
//! gigabytes: at most `concurrency` hashes run at once, a request waits briefly for its
//! turn, and past that is told to come back (503 with `Retry-After`).

use std::{sync::Arc, time::Duration};

use tokio::sync::Semaphore;

use crate::error::Error;

pub struct HashingPool {
    permits: Arc<Semaphore>,
    wait: Duration,
}

impl HashingPool {
    pub fn new(concurrency: usize, wait: Duration) -> Self {
        Self { permits: Arc::new(Semaphore::new(concurrency.max(1))), wait }
    }

    /// Runs CPU-heavy `work` on the blocking pool once a turn is free.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
        let permit = tokio::time::timeout(self.wait, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| Error::Busy)?
            .map_err(|_| Error::Busy)?;
        tokio::task::spawn_blocking(move || {
            let _turn = permit;
            work()
        })
        .await
        .map_err(|e| Error::internal(format!("hashing task: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn past_the_bound_a_request_is_told_to_retry() {
        let pool = Arc::new(HashingPool::new(1, Duration::from_millis(20)));
        let (started, release) = (Arc::new(tokio::sync::Notify::new()), Arc::new(std::sync::Barrier::new(2)));
        let busy = {
            let (pool, started, release) = (Arc::clone(&pool), Arc::clone(&started), Arc::clone(&release));
            tokio::spawn(async move {
                pool.run(move || {
                    started.notify_one();
                    release.wait();
                })
                .await
            })
        };
        started.notified().await;
        assert!(matches!(pool.run(|| ()).await, Err(Error::Busy)));
        release.wait();
        busy.await.unwrap().unwrap();
        assert!(pool.run(|| ()).await.is_ok(), "a turn is free again");
    }
}
