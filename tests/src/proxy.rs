//! A TCP proxy a test can cut and restore: a Redis (or anything) that goes away and
//! comes back, for the parts of the platform pointed at it.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{net::TcpStream, sync::watch};

pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    /// Forwards connections to `upstream` (`host:port`) until dropped.
    pub async fn start(upstream: String) -> Self {
        let listener = keyplane_common::testsuite::listener().await;
        let addr = listener.local_addr().expect("addr");
        let up = Arc::new(AtomicBool::new(true));
        let (cut, mut cuts) = watch::channel(0u64);
        let accepting = Arc::clone(&up);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped at once: the connection is refused in effect
                }
                let upstream = upstream.clone();
                // A connection is closed by the cuts after it opened, not by earlier ones.
                cuts.borrow_and_update();
                let mut cuts = cuts.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self { addr, up, cut }
    }

    /// Every open connection is closed and new ones are refused.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// The `redis://` URL of this proxy, for a proxy in front of Redis.
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr)
    }
}
