//! A raw Pulsar connection: frames written and read by hand, so tests can
//! send what real clients never would (lying counts and sizes, bad checksums).

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use prost::Message as _;
use pulsar::message::proto::{
    base_command::Type, BaseCommand, CommandConnect, CommandProducer, CommandSend, MessageMetadata,
};

/// One TCP connection to the Pulsar port.
pub struct RawPulsar(pub TcpStream);

impl RawPulsar {
    /// Connects with a 5 s read timeout.
    pub fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        Self(stream)
    }

    /// Connects, sends CONNECT and reads CONNECTED.
    pub fn connected(port: u16) -> Self {
        Self::connected_as(port, "raw")
    }

    /// [`Self::connected`], announcing `client_version` in CONNECT.
    pub fn connected_as(port: u16, client_version: &str) -> Self {
        let mut raw = Self::connect(port);
        raw.send(&BaseCommand {
            r#type: Type::Connect as i32,
            connect: Some(CommandConnect {
                client_version: client_version.into(),
                protocol_version: Some(19),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(raw.receive().expect("CONNECTED").r#type, Type::Connected as i32);
        raw
    }

    /// Sends a command-only frame.
    pub fn send(&mut self, command: &BaseCommand) {
        let body = command.encode_to_vec();
        let mut frame = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&body);
        self.0.write_all(&frame).expect("write");
    }

    /// Writes raw bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).expect("write");
    }

    /// The next command, or `None` when the broker closed the connection.
    pub fn receive(&mut self) -> Option<BaseCommand> {
        let mut size = [0u8; 4];
        self.0.read_exact(&mut size).ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
        self.0.read_exact(&mut body).ok()?;
        let command_size = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
        BaseCommand::decode(&body[4..4 + command_size]).ok()
    }

    /// Opens producer `producer_id` on `topic`; the broker's answer.
    pub fn producer(&mut self, topic: &str, producer_id: u64) -> BaseCommand {
        self.send(&BaseCommand {
            r#type: Type::Producer as i32,
            producer: Some(CommandProducer {
                topic: topic.into(),
                producer_id,
                request_id: producer_id,
                ..Default::default()
            }),
            ..Default::default()
        });
        self.receive().expect("an answer to PRODUCER")
    }
}

/// A SEND of producer `producer_id` with `sequence_id` and `num_messages`.
pub fn send_command(producer_id: u64, sequence_id: u64, num_messages: i32) -> BaseCommand {
    BaseCommand {
        r#type: Type::Send as i32,
        send: Some(CommandSend { producer_id, sequence_id, num_messages: Some(num_messages), ..Default::default() }),
        ..Default::default()
    }
}

/// A frame with a message section (`[metadata size][metadata][payload]`),
/// its checksum flipped when `damaged`.
pub fn message_frame(command: &BaseCommand, metadata: &MessageMetadata, payload: &[u8], damaged: bool) -> Vec<u8> {
    let body = command.encode_to_vec();
    let meta = metadata.encode_to_vec();
    let mut section = (meta.len() as u32).to_be_bytes().to_vec();
    section.extend_from_slice(&meta);
    section.extend_from_slice(payload);
    let mut frame = ((4 + body.len() + 6 + section.len()) as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame.extend_from_slice(&0x0e01u16.to_be_bytes());
    frame.extend_from_slice(&(crc32c::crc32c(&section) ^ u32::from(damaged)).to_be_bytes());
    frame.extend_from_slice(&section);
    frame
}

/// The metadata of a raw producer's message: `count` messages in a batch,
/// or a message sent alone (`None`).
pub fn metadata(count: Option<i32>) -> MessageMetadata {
    MessageMetadata {
        producer_name: "raw".into(),
        sequence_id: 0,
        publish_time: 1_700_000_000_000,
        num_messages_in_batch: count,
        ..Default::default()
    }
}

/// One message of a batch payload: `[size][SingleMessageMetadata][value]`.
pub fn batch_member(value: &[u8]) -> Vec<u8> {
    let single =
        pulsar::message::proto::SingleMessageMetadata { payload_size: value.len() as i32, ..Default::default() }
            .encode_to_vec();
    let mut out = (single.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&single);
    out.extend_from_slice(value);
    out
}
