//! A minimal Kafka wire client: exact frames in, raw responses out, so tests
//! can send what real clients never would (unknown keys, bad sizes).

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::{
    messages::{
        fetch_request::{FetchPartition, FetchTopic},
        produce_request::{PartitionProduceData, TopicProduceData},
        ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
    },
    protocol::{Decodable, Encodable, HeaderVersion, StrBytes},
    records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType},
};

/// One TCP connection to a Kafka listener.
pub struct KafkaConn {
    stream: TcpStream,
    next_correlation: i32,
}

impl KafkaConn {
    /// Connects with a 5 s read timeout.
    pub fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        Self { stream, next_correlation: 1 }
    }

    /// Connects with a `timeout` for the connection and each read; `None`
    /// if the port refuses (a broker that is down).
    pub fn try_connect(port: u16, timeout: Duration) -> Option<Self> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
        stream.set_read_timeout(Some(timeout)).ok()?;
        Some(Self { stream, next_correlation: 1 })
    }

    /// Sets how long a read waits.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).expect("timeout");
    }

    /// Sends raw bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends a request frame with a header for `key`/`version` and `body` bytes.
    pub fn send_frame(&mut self, key: i16, version: i16, body: &[u8]) -> i32 {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&key.to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&correlation.to_be_bytes());
        frame.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
        frame.extend_from_slice(body);
        let mut out = (i32::try_from(frame.len()).expect("size")).to_be_bytes().to_vec();
        out.extend_from_slice(&frame);
        self.send_raw(&out);
        correlation
    }

    /// Encodes and sends a typed request.
    pub fn send<R: Encodable + HeaderVersion>(&mut self, key: ApiKey, version: i16, body: &R) -> i32 {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("polyport-tests")));
        let mut frame = BytesMut::new();
        header.encode(&mut frame, key.request_header_version(version)).expect("header");
        body.encode(&mut frame, version).expect("body");
        let mut out = (i32::try_from(frame.len()).expect("size")).to_be_bytes().to_vec();
        out.extend_from_slice(&frame);
        self.send_raw(&out);
        correlation
    }

    /// Reads one response frame (without its size); `None` if the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        if self.stream.read_exact(&mut size).is_err() {
            return None;
        }
        let mut body = vec![0u8; usize::try_from(i32::from_be_bytes(size)).expect("size")];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    /// [`receive`](Self::receive), or `None` when no response comes in time.
    pub fn try_receive<R: Decodable>(&mut self, key: ApiKey, version: i16, correlation: i32) -> Option<R> {
        let mut frame = self.read_frame()?;
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version)).ok()?;
        (header.correlation_id == correlation).then_some(())?;
        R::decode(&mut frame, version).ok()
    }

    /// Reads and decodes a typed response, checking the correlation id.
    pub fn receive<R: Decodable>(&mut self, key: ApiKey, version: i16, correlation: i32) -> R {
        let mut frame = self.read_frame().expect("response");
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version)).expect("header");
        assert_eq!(header.correlation_id, correlation);
        R::decode(&mut frame, version).expect("body")
    }

    /// Whether the broker has closed this connection (reads EOF or reset within 5 s).
    pub fn is_closed_by_broker(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
        }
    }
}

/// Splits a minimal error response: (correlation id, error code).
pub fn correlation_and_error(mut frame: Bytes) -> (i32, i16) {
    (frame.get_i32(), frame.get_i16())
}

/// One v2 record batch holding `values`, all at `timestamp`, as producer
/// `pid`/`epoch` from sequence `seq` (`pid` -1: not idempotent).
pub fn record_batch(values: &[Bytes], pid: i64, epoch: i16, seq: i32, timestamp: i64) -> BytesMut {
    let records: Vec<Record> = (0i32..)
        .zip(values)
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            // The encoder starts a new batch when offset - sequence changes;
            // the first record's sequence is the batch's (-1: none).
            sequence: if pid < 0 { i - 1 } else { seq + i },
            timestamp,
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(&mut out, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .expect("batch");
    out
}

/// Sends one Produce v9 of `records` to `partition` of `topic`. With acks 0
/// nothing is read back (`None`); else (error code, base offset).
pub fn produce(conn: &mut KafkaConn, topic: &str, partition: i32, acks: i16, records: Bytes) -> Option<(i16, i64)> {
    let answer = try_produce(conn, topic, partition, acks, records);
    assert!(acks == 0 || answer.is_some(), "no Produce response");
    answer
}

/// [`produce`], or `None` also when no response comes in time.
pub fn try_produce(conn: &mut KafkaConn, topic: &str, partition: i32, acks: i16, records: Bytes) -> Option<(i16, i64)> {
    let request = ProduceRequest::default().with_acks(acks).with_timeout_ms(5000).with_topic_data(vec![
        TopicProduceData::default().with_name(TopicName(StrBytes::from_string(topic.to_owned()))).with_partition_data(
            vec![PartitionProduceData::default().with_index(partition).with_records(Some(records))],
        ),
    ]);
    let c = conn.send(ApiKey::Produce, 9, &request);
    if acks == 0 {
        return None;
    }
    let response: ProduceResponse = conn.try_receive(ApiKey::Produce, 9, c)?;
    let p = response.responses.first()?.partition_responses.first()?;
    Some((p.error_code, p.base_offset))
}

/// Fetches (v12, no wait) up to `max_bytes` of `partition` of `topic` from
/// `offset`: (error code, the stored record batches as they are sent).
pub fn fetch_raw(conn: &mut KafkaConn, topic: &str, partition: i32, offset: i64, max_bytes: i32) -> (i16, Bytes) {
    let request =
        FetchRequest::default().with_max_wait_ms(0).with_max_bytes(max_bytes).with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)])]);
    let c = conn.send(ApiKey::Fetch, 12, &request);
    let response: FetchResponse = conn.receive(ApiKey::Fetch, 12, c);
    let p = &response.responses[0].partitions[0];
    (p.error_code, p.records.clone().unwrap_or_default())
}

/// The (base offset, attributes) of each record batch in `records`.
pub fn batch_headers(mut records: Bytes) -> Vec<(i64, i16)> {
    let mut out = Vec::new();
    // baseOffset i64, batchLength i32, then leader epoch, magic, crc, attributes.
    while records.len() >= 23 {
        let base = i64::from_be_bytes(records[..8].try_into().expect("8 bytes"));
        let length = usize::try_from(i32::from_be_bytes(records[8..12].try_into().expect("4 bytes"))).expect("length");
        let attributes = i16::from_be_bytes(records[21..23].try_into().expect("2 bytes"));
        out.push((base, attributes));
        if records.len() < 12 + length {
            break;
        }
        records.advance(12 + length);
    }
    out
}
