//! A throwaway Redis Sentinel setup from the installed `redis-server`: a master, a replica
//! and one sentinel watching them, on ports of their own, gone when dropped.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

pub const MASTER_NAME: &str = "keyplane-test";

pub struct SentinelSet {
    pub master: u16,
    pub replica: u16,
    pub sentinel: u16,
    dir: PathBuf,
    children: Vec<Child>,
}

fn server(dir: &std::path::Path, args: &[String]) -> Child {
    Command::new("redis-server")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed (Debian's redis-server package)")
}

async fn query<T: redis::FromRedisValue>(port: u16, command: &mut redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    command.query_async(&mut connection).await
}

impl SentinelSet {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("keyplane-sentinel-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (master, replica, sentinel) = (crate::free_port(), crate::free_port(), crate::free_port());
        let node = |port: u16| -> Vec<String> {
            ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        };
        let mut children = vec![server(&dir, &node(master))];
        let mut replica_args = node(replica);
        replica_args.extend(["--replicaof".to_owned(), "127.0.0.1".to_owned(), master.to_string()]);
        children.push(server(&dir, &replica_args));
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {sentinel}\nbind 127.0.0.1\ndir {}\nsentinel monitor {MASTER_NAME} 127.0.0.1 {master} 1\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\nsentinel failover-timeout {MASTER_NAME} 5000\n",
                dir.display()
            ),
        )
        .expect("sentinel config");
        children.push(server(&dir, &[config.display().to_string(), "--sentinel".to_owned()]));
        let set = Self { master, replica, sentinel, dir, children };
        // Ready: the replica in sync, and the sentinel knowing it.
        let ready = crate::eventually(Duration::from_secs(20), || async {
            let info: String = query(replica, &mut redis::cmd("INFO")).await.unwrap_or_default();
            let replicas: redis::RedisResult<Vec<redis::Value>> =
                query(sentinel, redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER_NAME)).await;
            info.contains("master_link_status:up") && replicas.is_ok_and(|r| !r.is_empty())
        })
        .await;
        assert!(ready, "the sentinel setup did not come up");
        set
    }

    pub fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}/{MASTER_NAME}", self.sentinel)
    }

    /// The port of the master the sentinel names now.
    pub async fn master_port(&self) -> Option<u16> {
        let addr: Vec<String> =
            query(self.sentinel, redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(MASTER_NAME)).await.ok()?;
        addr.get(1)?.parse().ok()
    }

    /// Fails the master over to the replica and stops the old master.
    pub async fn fail_over(&mut self) {
        let _: () =
            query(self.sentinel, redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER_NAME)).await.expect("failover");
        let replica = self.replica;
        let moved =
            crate::eventually(Duration::from_secs(20), || async { self.master_port().await == Some(replica) }).await;
        assert!(moved, "the sentinel did not promote the replica");
        let _ = self.children[0].kill();
        let _ = self.children[0].wait();
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
