//! The third-party proof: the example `line` handler is built out of tree (its
//! own cargo invocation and target directory, depending on handler-api alone),
//! loaded from a protocols directory and driven over TCP. A copy built against
//! an incompatible handler-api is refused with a clear error.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use polyport_tests::{
    free_port, kafka_library,
    line::{cargo_build, line_handler, Line},
    workspace_root, Broker,
};

fn line_broker(port: u16) -> Broker {
    Broker::configure(
        &format!("messagingProtocols=kafka,line\nlineListener=127.0.0.1:{port}"),
        &[&kafka_library(), line_handler()],
    )
}

#[test]
fn the_out_of_tree_handler_loads_serves_and_uses_host_services() {
    let port = free_port();
    let broker = line_broker(port).start();
    let mut line = Line::connect(port);
    assert_eq!(line.ask("ECHO hello").as_deref(), Some("hello"));
    assert_eq!(line.ask("SLEEP 30").as_deref(), Some("slept 30"));
    assert_eq!(line.ask("SPAWN 100").as_deref(), Some("5050"));
    assert_eq!(line.ask("NOSUCH x").as_deref().map(|r| r.starts_with("ERR")), Some(true));
    assert_eq!(line.ask("QUIT").as_deref(), Some("bye"));
    // The handler's metric, declared through the host, is on the broker's /metrics.
    let (status, metrics) = broker.http_get("/metrics");
    assert_eq!(status, 200);
    for series in [
        "line_commands_total{command=\"ECHO\"} 1",
        "line_commands_total{command=\"SPAWN\"} 1",
        "line_commands_total{command=\"other\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} missing from:\n{metrics}");
    }
    // The handler's tracing events reach the host's log, inside the connection span.
    assert!(broker.wait_for_log("line client connected", Duration::from_secs(5)), "{}", broker.log());
    assert!(broker.log().contains("conn{protocol=line"), "{}", broker.log());
}

/// A third-party handler authenticates and authorizes through the host:
/// the broker's token provider and permissions, no key in the handler.
#[test]
fn the_out_of_tree_handler_asks_the_host_who_may_do_what() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("dir");
    let key = dir.path().join("secret.key");
    let tool = |args: &[&str]| {
        let out = std::process::Command::new(polyport_tests::broker_bin()).args(args).output().expect("broker tokens");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    tool(&["tokens", "create-secret-key", "--output", key.to_str().expect("utf-8")]);
    let secret = format!("file://{}", key.display());
    let (admin, alice) = (
        tool(&["tokens", "create", "--secret-key", &secret, "--subject", "admin"]),
        tool(&["tokens", "create", "--secret-key", &secret, "--subject", "alice"]),
    );
    let _broker = Broker::configure(
        &format!(
            "messagingProtocols=line\nlineListener=127.0.0.1:{port}\nauthenticationEnabled=true\n\
             authenticationProviders=token\ntokenSecretKey={secret}\nauthorizationEnabled=true\nsuperUserRoles=admin"
        ),
        &[line_handler()],
    )
    .start();
    let mut line = Line::connect(port);
    assert!(line.call("PUB orders x").starts_with("ERR authentication AUTH <token> first"));
    assert!(line.call("AUTH not.a.token").starts_with("ERR authentication authentication failed: invalid token"));
    assert_eq!(line.call(&format!("AUTH {alice}")), "role alice");
    assert_eq!(line.call("PUB orders x"), "ERR not_authorized role alice may not PUB orders");
    assert_eq!(line.call(&format!("AUTH {admin}")), "role admin");
    assert_eq!(line.call("PUB orders x"), "0");
}

#[test]
fn a_panic_closes_that_connection_only() {
    let port = free_port();
    let mut broker = line_broker(port).start();
    let mut bystanders: Vec<Line> = (0..3).map(|_| Line::connect(port)).collect();
    for b in &mut bystanders {
        assert_eq!(b.ask("ECHO before").as_deref(), Some("before"));
    }
    let mut victim = Line::connect(port);
    assert_eq!(victim.ask("PANIC"), None, "the panicking connection is closed");
    for b in &mut bystanders {
        assert_eq!(b.ask("ECHO after").as_deref(), Some("after"));
    }
    assert_eq!(Line::connect(port).ask("ECHO new").as_deref(), Some("new"));
    assert!(broker.is_running());
    // The connection closes as the host drops the panicked future; the host's
    // line about it follows a moment later.
    let closed = "handler panicked while serving this connection; connection closed";
    assert!(broker.wait_for_log(closed, Duration::from_secs(5)), "{}", broker.log());
    let log = broker.log();
    assert!(log.contains("handler panicked at src/lib.rs"), "the handler's panic message reaches the log:\n{log}");
    assert!(log.contains("PANIC command received"), "{log}");
}

#[test]
fn two_handlers_on_one_address_exit_2() {
    let port = free_port();
    let exit = Broker::configure(
        &format!(
            "messagingProtocols=kafka,line\nkafkaListeners=PLAINTEXT://0.0.0.0:{port}\nlineListener=127.0.0.1:{port}"
        ),
        &[&kafka_library(), line_handler()],
    )
    .run_to_exit();
    assert_eq!(exit.status.code(), Some(2), "{}", exit.log);
    assert!(exit.log.contains("two handlers on one address"), "{}", exit.log);
}

#[test]
fn duplicate_protocol_names_exit_2_naming_both_libraries() {
    let port = free_port();
    let broker =
        Broker::configure(&format!("messagingProtocols=line\nlineListener=127.0.0.1:{port}"), &[line_handler()]);
    fs::copy(line_handler(), broker.protocols_dir().join("libline_copy.so")).expect("copy");
    let exit = broker.run_to_exit();
    assert_eq!(exit.status.code(), Some(2), "{}", exit.log);
    assert!(exit.log.contains("protocol \"line\" is provided by more than one library"), "{}", exit.log);
    assert!(exit.log.contains("libline_copy.so") && exit.log.contains("libline_handler.so"), "{}", exit.log);
}

/// Copies `src` to `dst` recursively, skipping build output.
fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).expect("mkdir");
    for entry in fs::read_dir(src).expect("read_dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &dst.join(&name));
        } else {
            fs::copy(&path, dst.join(&name)).expect("copy");
        }
    }
}

/// Builds the example against a modified copy of handler-api; returns the library.
fn build_against_modified_api(work: &Path, edit: &dyn Fn(&Path)) -> PathBuf {
    let _ = line_handler(); // the compatible build first: both share a target dir
    let api = work.join("handler-api");
    let example = work.join("line-handler");
    copy_tree(&workspace_root().join("handler-api"), &api);
    copy_tree(&workspace_root().join("examples/line-handler"), &example);
    let manifest = fs::read_to_string(api.join("Cargo.toml")).expect("read");
    fs::write(api.join("Cargo.toml"), manifest.replace("[lints]\nworkspace = true\n", "")).expect("write");
    let manifest = fs::read_to_string(example.join("Cargo.toml")).expect("read");
    fs::write(example.join("Cargo.toml"), manifest.replace("../../handler-api", "../handler-api")).expect("write");
    edit(&api);
    let built = cargo_build(&example.join("Cargo.toml"));
    let kept = work.join("libline_handler.so");
    fs::copy(built, &kept).expect("copy");
    kept
}

fn edit_file(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{} no longer contains {from:?}", path.display());
    fs::write(path, text.replacen(from, to, 1)).expect("write");
}

fn expect_refused(library: &Path, reason: &str) {
    let port = free_port();
    let exit = Broker::configure(
        &format!("messagingProtocols=kafka,line\nlineListener=127.0.0.1:{port}"),
        &[&kafka_library(), library],
    )
    .run_to_exit();
    assert_eq!(exit.status.code(), Some(2), "{}", exit.log);
    assert!(exit.log.contains("requested protocol \"line\""), "{}", exit.log);
    assert!(exit.log.contains(&format!("libline_handler.so failed to load: {reason}")), "{}", exit.log);
    assert!(exit.log.lines().count() < 30, "the error is a summary, not a layout dump:\n{}", exit.log);
    eprintln!("{}", exit.log);
}

#[test]
fn a_handler_built_against_another_handler_api_version_is_refused() {
    let work = tempfile::tempdir().expect("tempdir");
    // A handler built for handler-api 0.1 (the ABI before partition handles).
    let lib = build_against_modified_api(work.path(), &|api| {
        edit_file(&api.join("Cargo.toml"), "version = \"0.2.4\"", "version = \"0.1.0\"");
    });
    expect_refused(&lib, "incompatible handler-api: the broker expects 0.2.4, the library was built with 0.1.0");
}

#[test]
fn a_handler_built_against_a_changed_layout_is_refused() {
    let work = tempfile::tempdir().expect("tempdir");
    // Same version, one field added to a type that crosses the boundary.
    let lib = build_against_modified_api(work.path(), &|api| {
        let error_rs = api.join("src/error.rs");
        edit_file(&error_rs, "    message: RString,\n}", "    message: RString,\n    detail: u32,\n}");
        edit_file(
            &error_rs,
            "Self { kind, message: RString::from(message.into()) }",
            "Self { kind, message: RString::from(message.into()), detail: 0 }",
        );
    });
    expect_refused(&lib, "incompatible ABI (type layouts differ from the broker's handler-api 0.2.4)");
}

/// A third party's unit tests need no broker: the example's run on
/// handler-api's in-memory host (`testing::MemoryHost`), built out of tree.
#[test]
fn the_example_handlers_unit_tests_run_on_the_in_memory_host() {
    let _ = line_handler(); // the same target directory: one build at a time
    let output = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["test", "--quiet", "--manifest-path"])
        .arg(workspace_root().join("examples/line-handler/Cargo.toml"))
        .arg("--target-dir")
        .arg(polyport_tests::line::out_of_tree_target())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("1 passed"), "{stdout}");
}
