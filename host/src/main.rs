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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Token keys and tokens, as `pulsar tokens` makes them (docs/security.md).
    #[command(subcommand)]
    Tokens(Tokens),
}

#[derive(Debug, clap::Subcommand)]
enum Tokens {
    /// A new random secret key for HS256 tokens (tokenSecretKey).
    CreateSecretKey {
        /// Write the key's raw bytes here (mode 0600); without it, print
        /// it as base64 for `tokenSecretKey=data:;base64,<key>`.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Signs a token whose subject is a role.
    Create {
        /// The role.
        #[arg(long, short)]
        subject: String,
        /// The secret key (HS256): `file:///path` or `data:;base64,<key>`.
        #[arg(long, conflicts_with = "private_key", required_unless_present = "private_key")]
        secret_key: Option<String>,
        /// A PEM private key (RS256 or ES256, with --algorithm): `file:///path`.
        #[arg(long)]
        private_key: Option<String>,
        /// HS256/384/512 with a secret key; RS256, PS256, ES256... with a private key.
        #[arg(long, short)]
        algorithm: Option<String>,
        /// How long the token is valid: 30s, 10m, 12h, 7d, 1y; none: forever.
        #[arg(long, short)]
        expiry_time: Option<String>,
    },
}

/// `30s`, `10m`, `12h`, `7d`, `1y` (Pulsar's `--expiry-time` forms).
fn parse_expiry(text: &str) -> Result<std::time::Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 =
        number.parse().map_err(|_| format!("--expiry-time {text:?}: expected a number and s, m, h, d or y"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(format!("--expiry-time {text:?}: expected a unit among s, m, h, d, w, y")),
    };
    Ok(std::time::Duration::from_secs(n.saturating_mul(seconds)))
}

fn tokens(command: Tokens) -> Result<(), String> {
    use base64::Engine as _;
    use polyport_host::security::token;
    match command {
        Tokens::CreateSecretKey { output } => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| format!("no randomness: {e}"))?;
            match output {
                None => println!("{}", base64::engine::general_purpose::STANDARD.encode(key)),
                Some(path) => {
                    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
                    let mut file = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&path)
                        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                    file.write_all(&key).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                }
            }
        }
        Tokens::Create { subject, secret_key, private_key, algorithm, expiry_time } => {
            let expiry = expiry_time.as_deref().map(parse_expiry).transpose()?;
            let (location, default_alg) = match (&secret_key, &private_key) {
                (Some(secret), _) => (secret, "HS256"),
                (None, Some(private)) => (private, "RS256"),
                (None, None) => return Err("--secret-key or --private-key is needed".into()),
            };
            let key = token::read_key(location).map_err(|e| e.to_string())?;
            let algorithm = algorithm.as_deref().unwrap_or(default_alg);
            println!("{}", token::create(&key, algorithm, &subject, expiry).map_err(|e| e.to_string())?);
        }
    }
    Ok(())
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
    if let Some(Command::Tokens(command)) = args.command {
        return match tokens(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("broker tokens: {e}");
                ExitCode::from(EXIT_STARTUP)
            }
        };
    }
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
