//! `line`: a tiny line-based text protocol, as a third party would write it.
//!
//! One command per line, one reply line per command:
//! - `ECHO <text>`   replies `<text>`
//! - `SLEEP <ms>`    waits on the host's timer, replies `slept <ms>`
//! - `SPAWN <n>`     sums 1..=n in a task spawned on the host, replies the sum
//! - `PANIC`         panics inside the connection future (the host closes this connection only)
//! - `QUIT`          replies `bye` and closes
//!
//! Storage, through the host's services (payloads are single words here):
//! - `CREATE <topic> <partitions>` / `DELETE <topic>` / `TOPICS <tenant/ns>`
//! - `PUB <topic> <word>`      appends one entry, replies its offset
//! - `GET <topic> <offset> <max>` replies `offset=word ...` from that offset
//! - `RANGE <topic>`           replies `<start> <end>`
//! - `SUB <topic> <cursor>` / `ACK <topic> <cursor> <offset>` / `CURSORS <topic>`
//! - `NEXT <topic> <cursor> <max>` reads on from where the cursor's last read ended
//! - `MSGID <topic> <offset>` / `OFFSET <topic> <ledger>:<entry>:<batch>`
//! - `WAIT <topic> <offset> <ms>` waits up to `<ms>` for the topic to exist
//!   and hold `<offset>`, then replies as `GET <topic> <offset> 1` (or `timeout`)
//!
//! Each connection opens a topic's partition handle on first use and keeps it
//! ([`Host::open_partition`]); a handle outlives its topic's deletion (its
//! calls answer `not_found`, or recreate the topic on `PUB`).
//!
//! Security, through the host's services (its providers and permissions;
//! the handler never sees a key):
//! - `AUTH <token>`  proves a role with a token (`Host::authenticate`),
//!   replies `role <role>`. When the broker has `authenticationEnabled`,
//!   storage commands before it reply `ERR authentication ...`.
//! - With `authorizationEnabled`, each storage command asks
//!   `Host::authorize`: `PUB` needs produce, reads and cursors consume,
//!   `CREATE`/`DELETE` a tenant admin, `TOPICS` lookup on the namespace.
//!
//! Errors reply `ERR <kind> <message>`.
//!
//! Metrics, through the host's metrics service: `line_commands_total{command}`
//! on the broker's `/metrics` (`Host::metric`).
//!
//! Configuration: `lineListener` (default `127.0.0.1:7070`).

use std::{collections::HashMap, time::Duration};

use polyport_handler_api::{
    export_handler,
    storage::{Ack, CursorReadRequest, Entry, InitialPosition, NewEntry, OpenOptions, Position, ReadRequest},
    Config, Connection, ConnectionFuture, HandlerError, Host, Listener, Metric, MetricSpec, Partition,
    ProtocolHandler,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Default)]
struct LineHandler {
    address: String,
    host: Option<Host>,
    /// `line_commands_total{command}`.
    commands: Metric,
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
        // Exported by the host on /metrics; a host without the metrics
        // service (older than 0.2.3) leaves it disabled.
        let spec = MetricSpec::counter("line_commands_total", "Line commands by name", &["command"]);
        self.commands = host.metric(spec).unwrap_or_else(|_| Metric::disabled());
        self.host = Some(host);
        Ok(())
    }

    fn listeners(&self) -> Vec<Listener> {
        vec![Listener { name: "line".to_owned(), address: self.address.clone() }]
    }

    fn new_connection(&self, _listener: &str, connection: Connection) -> ConnectionFuture {
        let host = self.host.clone();
        let commands = self.commands.clone();
        Box::pin(async move {
            let host = host.ok_or_else(|| HandlerError::other("connection before start"))?;
            tracing::info!(peer = connection.peer_addr(), "line client connected");
            let mut stream = BufReader::new(connection);
            let mut line = String::new();
            let mut partitions = Partitions { host: host.clone(), open: HashMap::new() };
            let mut role: Option<String> = None;
            loop {
                line.clear();
                if stream.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                let (command, arg) = line.trim_end().split_once(' ').unwrap_or((line.trim_end(), ""));
                // Label values from a fixed set: a client cannot add series.
                const KNOWN: &[&str] = &[
                    "ECHO", "SLEEP", "SPAWN", "PANIC", "QUIT", "AUTH", "CREATE", "DELETE", "TOPICS", "PUB", "GET",
                    "RANGE", "SUB", "ACK", "CURSORS", "NEXT", "MSGID", "OFFSET", "WAIT",
                ];
                commands.series(&[KNOWN.iter().find(|k| **k == command).copied().unwrap_or("other")]).inc();
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
                    "AUTH" => match host.authenticate("token", arg.as_bytes()).await {
                        Ok(proven) => {
                            let reply = format!("role {proven}");
                            role = Some(proven);
                            reply
                        }
                        Err(e) => format!("ERR {} {}", e.kind(), e.message()),
                    },
                    other => match allowed(&host, role.as_deref(), other, arg).await {
                        Err(e) => format!("ERR {} {}", e.kind(), e.message()),
                        Ok(()) => match storage(&mut partitions, other, arg).await {
                            Ok(reply) => reply,
                            Err(e) => format!("ERR {} {}", e.kind(), e.message()),
                        },
                    },
                };
                stream.write_all(format!("{reply}\n").as_bytes()).await?;
            }
        })
    }
}

export_handler!(LineHandler::default());

/// Whether `role` may run `command` on the topic (or namespace) its
/// argument names: the host decides, with the broker's permissions.
async fn allowed(host: &Host, role: Option<&str>, command: &str, arg: &str) -> Result<(), HandlerError> {
    use polyport_handler_api::{storage::Operation, ErrorKind};
    if host.authentication().enabled && role.is_none() {
        return Err(HandlerError::new(ErrorKind::AUTHENTICATION, "AUTH <token> first"));
    }
    if !host.authorization_enabled() {
        return Ok(());
    }
    let operation = match command {
        "PUB" => Operation::Produce,
        "CREATE" | "DELETE" => Operation::Admin,
        "TOPICS" => Operation::Lookup,
        _ => Operation::Consume,
    };
    let target = arg.split(' ').next().unwrap_or_default();
    if host.authorize(role, operation, target).await? {
        Ok(())
    } else {
        let who = role.unwrap_or("anonymous");
        Err(HandlerError::new(ErrorKind::NOT_AUTHORIZED, format!("role {who} may not {command} {target}")))
    }
}

fn invalid(what: &str) -> HandlerError {
    HandlerError::new(polyport_handler_api::ErrorKind::INVALID_ARGUMENT, what)
}

fn number<T: std::str::FromStr>(word: Option<&str>, what: &str) -> Result<T, HandlerError> {
    word.and_then(|w| w.parse().ok()).ok_or_else(|| invalid(what))
}

/// Entries as `offset=word offset=word ...`.
fn entries_line(entries: &[Entry]) -> String {
    let words: Vec<String> =
        entries.iter().map(|e| format!("{}={}", e.meta.base_offset, String::from_utf8_lossy(&e.payload))).collect();
    words.join(" ")
}

/// A connection's open partitions, by the name its client used.
struct Partitions {
    host: Host,
    open: HashMap<String, Partition>,
}

impl Partitions {
    /// The handle of `topic`, opened now (creating the topic if `create`) or kept from before.
    async fn get(&mut self, topic: &str, create: bool) -> Result<Partition, HandlerError> {
        if let Some(open) = self.open.get(topic) {
            return Ok(open.clone());
        }
        let open = self.host.open_partition(topic, OpenOptions { auto_create: create, wait_ms: 0 }).await?;
        self.open.insert(topic.to_owned(), open.clone());
        Ok(open)
    }
}

/// The storage commands.
async fn storage(partitions: &mut Partitions, command: &str, arg: &str) -> Result<String, HandlerError> {
    let host = partitions.host.clone();
    let mut words = arg.split(' ');
    let topic = words.next().unwrap_or_default();
    match command {
        "CREATE" => {
            host.create_topic(topic, number(words.next(), "CREATE <topic> <partitions>")?).await?;
            Ok("created".into())
        }
        "DELETE" => host.delete_topic(topic).await.map(|()| "deleted".into()),
        "TOPICS" => {
            let topics = host.list_topics(topic).await?;
            Ok(topics.iter().map(|(n, p)| format!("{n}:{p}")).collect::<Vec<_>>().join(" "))
        }
        "PUB" => {
            let word = words.next().ok_or_else(|| invalid("PUB <topic> <word>"))?;
            let entry = NewEntry {
                payload: word.as_bytes().to_vec().into(),
                count: 1,
                format: 0,
                flags: 0,
                max_timestamp_ms: -1,
            };
            let stored = partitions.get(topic, true).await?.append(vec![entry], true).await?;
            Ok(stored.appended.first().map(|a| a.base_offset.to_string()).unwrap_or_default())
        }
        "GET" => {
            let offset = number(words.next(), "GET <topic> <offset> <max>")?;
            let max_entries = number(words.next(), "GET <topic> <offset> <max>")?;
            let request = ReadRequest { offset, max_entries, max_bytes: u32::MAX, wait_ms: 0 };
            let result = partitions.get(topic, false).await?.read(request).await?;
            Ok(entries_line(&result.entries))
        }
        "WAIT" => {
            let offset = number(words.next(), "WAIT <topic> <offset> <ms>")?;
            let wait_ms = number(words.next(), "WAIT <topic> <offset> <ms>")?;
            // Waits for the topic (opened without keeping: it may not exist yet)...
            let started = host.monotonic();
            let partition = host.open_partition(topic, OpenOptions { auto_create: false, wait_ms }).await?;
            // ...then for the offset, in what is left of the time.
            let left = wait_ms.saturating_sub(
                u32::try_from(host.monotonic().saturating_sub(started).as_millis()).unwrap_or(u32::MAX),
            );
            if partition.wait(offset, left).await?.end <= offset {
                return Ok("timeout".into());
            }
            let result =
                partition.read(ReadRequest { offset, max_entries: 1, max_bytes: u32::MAX, wait_ms: 0 }).await?;
            Ok(entries_line(&result.entries))
        }
        "RANGE" => partitions.get(topic, false).await?.range().await.map(|r| format!("{} {}", r.start, r.end)),
        "SUB" => {
            let name = words.next().ok_or_else(|| invalid("SUB <topic> <cursor>"))?;
            let c = partitions.get(topic, true).await?.cursor_open(name, true, InitialPosition::Earliest).await?;
            Ok(format!("{} {}", c.mark_delete, c.backlog_messages))
        }
        "ACK" => {
            let name = words.next().ok_or_else(|| invalid("ACK <topic> <cursor> <offset>"))?;
            let ack = Ack::Cumulative(number(words.next(), "ACK <topic> <cursor> <offset>")?);
            let c = partitions.get(topic, false).await?.cursor_ack(name, ack).await?;
            Ok(format!("{} {}", c.mark_delete, c.backlog_messages))
        }
        "NEXT" => {
            let name = words.next().ok_or_else(|| invalid("NEXT <topic> <cursor> <max>"))?;
            let max_entries = number(words.next(), "NEXT <topic> <cursor> <max>")?;
            let request = CursorReadRequest { max_entries, max_bytes: u32::MAX, wait_ms: 0, rewind: false };
            let result = partitions.get(topic, false).await?.cursor_read(name, request).await?;
            Ok(entries_line(&result.entries))
        }
        "CURSORS" => {
            let cursors = partitions.get(topic, false).await?.cursors().await?;
            Ok(cursors
                .iter()
                .map(|c| format!("{}:{}:{}", c.name, c.mark_delete, c.backlog_messages))
                .collect::<Vec<_>>()
                .join(" "))
        }
        "MSGID" => {
            let offset = number(words.next(), "MSGID <topic> <offset>")?;
            let p = partitions.get(topic, false).await?.offset_to_message_id(offset).await?;
            Ok(format!("{}:{}:{}", p.ledger_id, p.entry_id, p.batch_index))
        }
        "OFFSET" => {
            let id = words.next().unwrap_or_default();
            let parts: Vec<&str> = id.split(':').collect();
            let [l, e, b] = parts.as_slice() else { return Err(invalid("OFFSET <topic> <ledger>:<entry>:<batch>")) };
            let position = Position {
                ledger_id: number(Some(l), "ledger id")?,
                entry_id: number(Some(e), "entry id")?,
                batch_index: number(Some(b), "batch index")?,
            };
            partitions.get(topic, false).await?.message_id_to_offset(position).await.map(|o| o.to_string())
        }
        other => {
            Err(HandlerError::new(polyport_handler_api::ErrorKind::UNSUPPORTED, format!("unknown command {other:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use polyport_handler_api::testing::MemoryHost;

    use super::*;

    async fn call(partitions: &mut Partitions, line: &str) -> String {
        let (command, arg) = line.split_once(' ').unwrap_or((line, ""));
        storage(partitions, command, arg).await.unwrap_or_else(|e| format!("ERR {} {}", e.kind(), e.message()))
    }

    #[tokio::test]
    async fn storage_commands_on_the_in_memory_host() {
        let mut p = Partitions { host: MemoryHost::new().host(), open: HashMap::new() };
        assert_eq!(call(&mut p, "PUB orders hello").await, "0");
        assert_eq!(call(&mut p, "PUB orders world").await, "1");
        assert_eq!(call(&mut p, "GET orders 1 10").await, "1=world");
        assert_eq!(call(&mut p, "SUB orders audit").await, "0 2");
        assert_eq!(call(&mut p, "ACK orders audit 1").await, "1 1");
        assert_eq!(call(&mut p, "NEXT orders audit 5").await, "1=world");
        assert_eq!(call(&mut p, "WAIT orders 2 50").await, "timeout");
        assert!(call(&mut p, "GET missing 0 1").await.starts_with("ERR not_found"));
    }
}
