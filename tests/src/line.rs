//! The out-of-tree example handler (`examples/line-handler`): building it as
//! a third party would, and a client for its line protocol.

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use crate::workspace_root;

/// Target directory shared by the out-of-tree builds (kept between runs).
pub fn out_of_tree_target() -> PathBuf {
    workspace_root().join("target").join("out-of-tree")
}

/// Builds the crate at `manifest` in its own cargo invocation and target
/// directory; returns the line handler library it produced.
pub fn cargo_build(manifest: &Path) -> PathBuf {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(out_of_tree_target())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building {} failed", manifest.display());
    out_of_tree_target().join("debug").join("libline_handler.so")
}

/// The example handler, built once per test binary and copied aside (builds
/// against modified handler-apis write the same file name).
pub fn line_handler() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let built = cargo_build(&workspace_root().join("examples/line-handler/Cargo.toml"));
        let named = out_of_tree_target().join("compatible");
        fs::create_dir_all(&named).expect("dir");
        fs::copy(&built, named.join("libline_handler.so")).expect("copy");
        named.join("libline_handler.so")
    })
}

/// A client of the line protocol.
pub struct Line {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Line {
    /// Connects with a 10 s read timeout.
    pub fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        Self { reader: BufReader::new(stream.try_clone().expect("clone")), writer: stream }
    }

    /// Sends a command; its one-line reply, or `None` if the connection closed.
    pub fn ask(&mut self, command: &str) -> Option<String> {
        self.writer.write_all(format!("{command}\n").as_bytes()).ok()?;
        let mut reply = String::new();
        match self.reader.read_line(&mut reply) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(reply.trim_end().to_owned()),
        }
    }

    /// Sends a command and expects a reply.
    pub fn call(&mut self, command: &str) -> String {
        self.ask(command).unwrap_or_else(|| panic!("no reply to {command:?}"))
    }
}
