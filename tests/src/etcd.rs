//! A real etcd server (Debian's `etcd-server`, which `.ci/run` installs) on
//! loopback ports, in a temporary directory, stopped when dropped.

use std::{
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::free_port;

/// One etcd member serving clients on `127.0.0.1:port`.
pub struct Etcd {
    child: Child,
    dir: tempfile::TempDir,
    peer: u16,
    /// The client port.
    pub port: u16,
}

/// The etcd binary: `$ETCD`, else `etcd` on the `PATH` (Debian's
/// `etcd-server` installs `/usr/bin/etcd`).
fn etcd_bin() -> PathBuf {
    std::env::var_os("ETCD").map_or_else(|| PathBuf::from("etcd"), PathBuf::from)
}

impl Etcd {
    /// Starts etcd and waits until it accepts connections (at most 20 s).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (port, peer) = (free_port(), free_port());
        let child = Self::spawn(&dir, port, peer);
        let etcd = Self { child, dir, peer, port };
        etcd.wait_listening();
        etcd
    }

    fn spawn(dir: &tempfile::TempDir, port: u16, peer: u16) -> Child {
        let client = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.path().join("etcd.log")).unwrap();
        Command::new(etcd_bin())
            .args(["--name", "polyport-test", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("polyport-test={peer_url}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {}: {e} (install Debian's etcd-server, or set ETCD)", etcd_bin().display())
            })
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "etcd did not listen on {} within 20 s", self.port);
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops etcd (SIGKILL), keeping its data.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.child = Self::spawn(&self.dir, self.port, self.peer);
        self.wait_listening();
    }

    /// The broker's `metadataStoreUrl` for this etcd.
    pub fn url(&self) -> String {
        format!("etcd:http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
