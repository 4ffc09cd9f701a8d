//! `broker`: the Polyport broker process.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use polyport_host::{config::BrokerConfig, logging, Broker};

/// Exit code for configuration and start-up errors (bad value, missing or
/// incompatible handler, address in use).
const EXIT_STARTUP: u8 = 2;

/// The Polyport broker: Pulsar-style host with protocol handlers loaded from
/// protocolHandlerDirectory.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The broker configuration file (key=value lines, # comments). Keys can be
    /// overridden with `POLYPORT_<key>` environment variables.
    #[arg(long, short, default_value = "conf/broker.conf")]
    config: PathBuf,
}

/// Keeps freed memory in the process for reuse. glibc returns large blocks
/// to the kernel (mmap'd blocks at free, the heap's top past the trim
/// threshold), and the next request buffer or batch then faults in fresh
/// pages, which on a virtual machine costs more than the copy into them
/// (see docs/benchmarks.md). What is kept is bounded: at most 64 MiB of
/// free memory per arena, and 4 arenas.
fn retain_freed_memory() {
    // SAFETY: mallopt only changes allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 4);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

fn main() -> ExitCode {
    retain_freed_memory();
    let args = Args::parse();
    let config = match BrokerConfig::load(&args.config, std::env::vars()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("broker: {e}");
            return ExitCode::from(EXIT_STARTUP);
        }
    };
    let max_log_level = logging::init(&config.log_level);
    // Fault injection for the tests' builds only (FAILPOINTS, see tests/).
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("broker").build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        match Broker::start(config, max_log_level).await {
            Ok(broker) => {
                broker.serve(shutdown_signal()).await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("start-up failed: {e}");
                ExitCode::from(EXIT_STARTUP)
            }
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
