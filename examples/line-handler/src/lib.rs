//! `line`: a tiny line-based text protocol, as a third party would write it.
//!
//! One command per line, one reply line per command:
//! - `ECHO <text>`   replies `<text>`
//! - `SLEEP <ms>`    waits on the host's timer, replies `slept <ms>`
//! - `SPAWN <n>`     sums 1..=n in a task spawned on the host, replies the sum
//! - `PANIC`         panics inside the connection future (the host closes this connection only)
//! - `QUIT`          replies `bye` and closes
//!
//! Configuration: `lineListener` (default `127.0.0.1:7070`).

use std::time::Duration;

use polyport_handler_api::{
    export_handler, Config, Connection, ConnectionFuture, HandlerError, Host, Listener, ProtocolHandler,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Default)]
struct LineHandler {
    address: String,
    host: Option<Host>,
}

impl ProtocolHandler for LineHandler {
    fn protocol_name(&self) -> &str {
        "line"
    }

    fn config_keys(&self) -> Vec<String> {
        vec!["lineListener".to_owned()]
    }

    fn initialize(&mut self, config: &Config) -> Result<(), HandlerError> {
        let address = config.get("lineListener").unwrap_or("127.0.0.1:7070");
        if !address.contains(':') {
            return Err(HandlerError::config("lineListener", address, "host:port"));
        }
        self.address = address.to_owned();
        Ok(())
    }

    fn start(&mut self, host: Host) -> Result<(), HandlerError> {
        self.host = Some(host);
        Ok(())
    }

    fn listeners(&self) -> Vec<Listener> {
        vec![Listener { name: "line".to_owned(), address: self.address.clone() }]
    }

    fn new_connection(&self, _listener: &str, connection: Connection) -> ConnectionFuture {
        let host = self.host.clone();
        Box::pin(async move {
            let host = host.ok_or_else(|| HandlerError::other("connection before start"))?;
            tracing::info!(peer = connection.peer_addr(), "line client connected");
            let mut stream = BufReader::new(connection);
            let mut line = String::new();
            loop {
                line.clear();
                if stream.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                let (command, arg) = line.trim_end().split_once(' ').unwrap_or((line.trim_end(), ""));
                let reply = match command {
                    "ECHO" => arg.to_owned(),
                    "SLEEP" => {
                        let ms: u64 = arg.parse().unwrap_or(0);
                        host.sleep(Duration::from_millis(ms)).await;
                        format!("slept {ms}")
                    }
                    "SPAWN" => {
                        let n: u64 = arg.parse().unwrap_or(0);
                        let task = host.spawn("sum", async move { (1..=n).sum::<u64>() });
                        task.join().await?.to_string()
                    }
                    "PANIC" => panic!("PANIC command received"),
                    "QUIT" => {
                        stream.write_all(b"bye\n").await?;
                        return Ok(());
                    }
                    other => format!("ERR unknown command {other:?}"),
                };
                stream.write_all(format!("{reply}\n").as_bytes()).await?;
            }
        })
    }
}

export_handler!(LineHandler::default());
