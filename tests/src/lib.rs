//! Test harness: starts the real `broker` binary with a configuration in a
//! temporary directory, reads its log, stops it with signals; and a minimal
//! Kafka wire client for tests that need exact bytes.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

pub mod cluster;
pub mod etcd;
pub mod kafka;
pub mod line;
pub mod pulsar;
pub mod seaweed;

use std::{
    fs,
    io::Read,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// Where cargo put the debug build (`make build-debug`).
pub fn debug_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from).join("debug")
}

/// The broker binary under test.
pub fn broker_bin() -> PathBuf {
    let bin = debug_dir().join("broker");
    assert!(bin.exists(), "{} is missing: run `make build-debug` (or `make test`)", bin.display());
    bin
}

/// The Kafka handler library built from this workspace.
pub fn kafka_library() -> PathBuf {
    let lib = debug_dir().join("libkafka.so");
    assert!(lib.exists(), "{} is missing: run `make build-debug` (or `make test`)", lib.display());
    lib
}

/// A TCP port free at the time of the call, and never handed out before in
/// this process: the kernel may give the same ephemeral port to two binds in
/// a row once the first is closed, and a broker configured with one port
/// twice (its Kafka and Pulsar listeners) fails to start.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A broker process with its own configuration, protocols and data directories.
pub struct Broker {
    child: Option<Child>,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// Log length when the current process started.
    log_start: usize,
    /// The Kafka listener port chosen for this broker.
    pub kafka_port: u16,
    /// The Pulsar protocol port (`brokerServicePort`) chosen for this broker.
    pub pulsar_port: u16,
    /// The admin REST API's port (`webServicePort`) chosen for this broker.
    pub web_port: u16,
}

/// What a broker run that ended by itself produced.
#[derive(Debug)]
pub struct Exit {
    /// The exit status.
    pub status: ExitStatus,
    /// How long it ran.
    pub elapsed: Duration,
    /// Everything it logged.
    pub log: String,
}

impl Broker {
    /// Prepares a broker: `conf` lines are appended after defaults that use a
    /// free Kafka port and the temporary directories; `libraries` are copied
    /// into its protocols directory.
    pub fn configure(conf: &str, libraries: &[&Path]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let protocols = dir.path().join("protocols");
        fs::create_dir_all(&protocols).unwrap();
        for lib in libraries {
            fs::copy(lib, protocols.join(lib.file_name().unwrap())).unwrap();
        }
        let (kafka_port, pulsar_port, web_port) = (free_port(), free_port(), free_port());
        let text = format!(
            "messagingProtocols=kafka\nprotocolHandlerDirectory={}\ndataDirectory={}\nadvertisedAddress=127.0.0.1\n\
             kafkaListeners=PLAINTEXT://127.0.0.1:{kafka_port}\nbrokerServicePort={pulsar_port}\n\
             webServicePort={web_port}\nbrokerShutdownTimeoutMs=4000\nlogLevel=info\n{conf}\n",
            protocols.display(),
            dir.path().join("data").display(),
        );
        fs::write(dir.path().join("broker.conf"), text).unwrap();
        Self { child: None, dir, env: Vec::new(), log_start: 0, kafka_port, pulsar_port, web_port }
    }

    /// `GET path` on the admin port (HTTP/1.0, no client library): the
    /// status code and the body.
    pub fn http_get(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.web_port)).expect("admin port");
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, body.to_owned())
    }

    /// Adds an environment variable for the broker process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Adds environment variables for the broker process.
    pub fn envs(self, pairs: &[(&str, &str)]) -> Self {
        pairs.iter().fold(self, |b, (k, v)| b.env(k, v))
    }

    /// The protocols directory, to drop more files in before starting.
    pub fn protocols_dir(&self) -> PathBuf {
        self.dir.path().join("protocols")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    fn spawn(&mut self) {
        self.log_start = self.log().len();
        let log = fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let child = Command::new(broker_bin())
            .arg("--config")
            .arg(self.dir.path().join("broker.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .env_remove("RUST_LOG")
            .envs(self.env.iter().cloned())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Starts the broker and waits until it logs "broker ready".
    pub fn start(mut self) -> Self {
        self.spawn();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.log()[self.log_start..].contains("broker ready") {
                return self;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("broker exited during start-up with {status}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "broker not ready after 20 s:\n{}", self.log());
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a broker expected to exit by itself (a start-up error) within 15 s.
    pub fn run_to_exit(mut self) -> Exit {
        let started = Instant::now();
        self.spawn();
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Exit { status, elapsed: started.elapsed(), log: self.log() };
            }
            if started.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                panic!("broker still running after 15 s:\n{}", self.log());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Waits up to `timeout` for `needle` to appear in the log.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The broker's resident memory (VmRSS), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.child.as_ref().unwrap().id();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().expect("running").id()).expect("pid")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Sends `signal` and waits (up to 15 s) for the exit.
    pub fn stop_with(mut self, signal: i32) -> Exit {
        let mut child = self.child.take().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let started = Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid, signal) };
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Exit { status, elapsed: started.elapsed(), log: self.log() };
            }
            if started.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                panic!("broker did not exit within 15 s of signal {signal}:\n{}", self.log());
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal`, waits for the exit, and keeps the directories for a restart.
    pub fn kill(&mut self, signal: i32) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(i32::try_from(child.id()).unwrap(), signal) };
        child.wait().unwrap()
    }

    /// Starts the broker again on the same configuration and data.
    pub fn restart(self) -> Self {
        assert!(self.child.is_none(), "stop the broker first");
        self.start()
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// SIGTERM and wait.
    pub fn terminate(self) -> Exit {
        self.stop_with(libc::SIGTERM)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
