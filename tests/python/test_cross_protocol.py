"""Kafka and Pulsar clients on the same topics (seed 004's K-Producer ->
P-Consumer and P-Producer -> K-Consumer), with every mapped field asserted:
keys (ordering key, partition key, base64 for keys that are not UTF-8),
values and nulls, headers and properties, timestamps and event times, and
Kafka offsets matching the order Pulsar sees."""

import base64
import time
import uuid

import pulsar
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import Broker, kafka_read


def test_kafka_producer_to_pulsar_consumer_keeps_every_field(broker, pulsar_client):
    name = f"k2p-{uuid.uuid4().hex[:8]}"
    consumer = pulsar_client.subscribe(f"persistent://public/default/{name}", "pulsar-side",
                                initial_position=pulsar.InitialPosition.Earliest)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
    p.produce(name, key=b"user-1", value=b"hello", headers=[("h1", b"a"), ("h2", b"b")], timestamp=1_700_000_000_001)
    p.produce(name, key=b"\xff\xfe", value=b"binary key", timestamp=1_700_000_000_002)
    p.produce(name, key=b"gone", value=None, timestamp=1_700_000_000_003)
    p.produce(name, value=b"no key", timestamp=1_700_000_000_004)
    assert p.flush(10) == 0
    got = []
    for _ in range(4):
        m = consumer.receive(timeout_millis=10000)
        got.append(m)
        consumer.acknowledge(m)
    first, binary, tombstone, keyless = got
    assert first.data() == b"hello"
    assert first.partition_key() == "user-1"
    assert first.ordering_key() == "user-1"
    assert first.properties() == {"h1": "a", "h2": "b"}
    assert first.event_timestamp() == 1_700_000_000_001
    assert first.publish_timestamp() == 1_700_000_000_001, "the batch's first timestamp"
    assert binary.data() == b"binary key"
    assert binary.partition_key() == base64.b64encode(b"\xff\xfe").decode(), "not UTF-8: base64"
    assert tombstone.has_null_value()
    assert tombstone.partition_key() == "gone"
    assert keyless.partition_key() == ""
    assert keyless.event_timestamp() == 1_700_000_000_004
    # The same messages, as Kafka numbers them.
    assert [m.offset() for m in kafka_read(broker.bootstrap, name, 4)] == [0, 1, 2, 3]


def test_pulsar_producer_to_kafka_consumer_keeps_every_field(broker, pulsar_client):
    name = f"p2k-{uuid.uuid4().hex[:8]}"
    producer = pulsar_client.create_producer(f"persistent://public/default/{name}", batching_enabled=True,
                                      batching_max_messages=3, batching_max_publish_delay_ms=20)
    producer.send(b"with event time", partition_key="pk-1", properties={"p": "1"}, event_timestamp=1_600_000_000_000)
    producer.send(b"ordering key wins", partition_key="pk-2", ordering_key="ok-2")
    producer.send(b"no key")
    producer.send(b"alone")  # a second batch
    producer.flush()
    before = int(time.time() * 1000)
    got = kafka_read(broker.bootstrap, name, 4)
    assert [m.offset() for m in got] == [0, 1, 2, 3]
    a, b, c, d = got
    assert (a.key(), a.value(), a.headers()) == (b"pk-1", b"with event time", [("p", b"1")])
    assert a.timestamp() == (1, 1_600_000_000_000), "event time becomes the CreateTime timestamp"
    assert (b.key(), b.value()) == (b"ok-2", b"ordering key wins")
    assert b.timestamp()[1] > 1_600_000_000_000 and b.timestamp()[1] <= before, "no event time: the publish time"
    assert (c.key(), c.value(), c.headers()) == (None, b"no key", None)
    assert d.value() == b"alone"


def test_an_empty_pulsar_payload_is_an_empty_kafka_value(broker, pulsar_client):
    name = f"p2k-empty-{uuid.uuid4().hex[:8]}"
    producer = pulsar_client.create_producer(f"persistent://public/default/{name}", batching_enabled=False)
    producer.send(b"", partition_key="empty")
    [m] = kafka_read(broker.bootstrap, name, 1)
    assert (m.key(), m.value()) == (b"empty", b"")


@pytest.mark.parametrize("codec", ["LZ4", "ZLib", "ZSTD", "SNAPPY"])
def test_compressed_pulsar_batches_reach_kafka_readers(broker, pulsar_client, codec):
    name = f"p2k-{codec.lower()}-{uuid.uuid4().hex[:8]}"
    producer = pulsar_client.create_producer(f"persistent://public/default/{name}",
                                      compression_type=getattr(pulsar.CompressionType, codec),
                                      batching_enabled=True, batching_max_messages=20,
                                      batching_max_publish_delay_ms=50)
    for i in range(20):
        producer.send_async(f"compressed {i} ".encode() * 10, None, partition_key=f"k{i}")
    producer.flush()
    got = kafka_read(broker.bootstrap, name, 20)
    assert [m.value() for m in got] == [f"compressed {i} ".encode() * 10 for i in range(20)]
    assert [m.key() for m in got] == [f"k{i}".encode() for i in range(20)]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_kafka_batches_reach_pulsar_consumers(broker, pulsar_client, codec):
    name = f"k2p-{codec}-{uuid.uuid4().hex[:8]}"
    consumer = pulsar_client.subscribe(f"persistent://public/default/{name}", "s",
                                initial_position=pulsar.InitialPosition.Earliest)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20, "compression.type": codec})
    for i in range(20):
        p.produce(name, key=f"k{i}".encode(), value=f"kafka {i} ".encode() * 10)
    assert p.flush(10) == 0
    got = []
    for _ in range(20):
        m = consumer.receive(timeout_millis=10000)
        got.append((m.partition_key(), m.data()))
        consumer.acknowledge(m)
    assert got == [(f"k{i}", f"kafka {i} ".encode() * 10) for i in range(20)]


def test_entry_format_pulsar_converts_at_produce_time():
    """KoP's entryFormat=pulsar: batches are stored in Pulsar's format, so
    Pulsar consumers read them natively and Kafka readers get them back
    converted, with the same fields and offsets."""
    b = Broker("entryFormat=pulsar\n").start()
    try:
        name = f"ef-{uuid.uuid4().hex[:8]}"
        p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 20, "compression.type": "lz4"})
        for i in range(10):
            p.produce(name, key=f"k{i}".encode(), value=f"v{i}".encode(), headers=[("h", str(i).encode())],
                      timestamp=1_700_000_000_000 + i)
        assert p.flush(10) == 0
        got = kafka_read(b.bootstrap, name, 10)
        assert [(m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[1]) for m in got] == [
            (i, f"k{i}".encode(), f"v{i}".encode(), [("h", str(i).encode())], 1_700_000_000_000 + i) for i in range(10)
        ]
        # ListOffsets by time finds the message inside a converted entry.
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"t-{uuid.uuid4().hex[:6]}"})
        found = [c.offsets_for_times([TopicPartition(name, 0, 1_700_000_000_000 + t)], timeout=10)[0].offset
                 for t in (0, 4, 9, 10)]
        c.close()
        assert found == [0, 4, 9, -1]
        pulsar_client = pulsar.Client(b.pulsar_url, operation_timeout_seconds=10)
        r = pulsar_client.create_reader(f"persistent://public/default/{name}", pulsar.MessageId.earliest)
        msgs = [r.read_next(5000) for _ in range(10)]
        assert [(m.partition_key(), m.data(), m.properties()) for m in msgs] == [
            (f"k{i}", f"v{i}".encode(), {"h": str(i)}) for i in range(10)
        ]
        pulsar_client.close()
    finally:
        assert b.stop() == 0, b.log()


def test_log_append_time_stamps_batches_with_the_broker_time():
    """kafkaMessageTimestampType=LogAppendTime: the broker's time replaces
    the producer's, for Kafka consumers, the producer's delivery report,
    offset lookups by time and Pulsar readers alike."""
    from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    b = Broker("kafkaMessageTimestampType=LogAppendTime\n").start()
    try:
        name = f"lat-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        topic_config = {"message.timestamp.type": "LogAppendTime"}
        admin.create_topics([NewTopic(name, 1, 1, config=topic_config)])[name].result(30)
        # A topic may keep its producers' times on a LogAppendTime broker.
        own = name + "-c"
        admin.create_topics([NewTopic(own, 1, 1, config={"message.timestamp.type": "CreateTime"})])[own].result(30)
        described = next(iter(admin.describe_configs([ConfigResource("TOPIC", own)]).values())).result(30)
        assert described["message.timestamp.type"].value == "CreateTime"
        described = next(iter(admin.describe_configs([ConfigResource("TOPIC", name)]).values())).result(30)
        assert described["message.timestamp.type"].value == "LogAppendTime"

        reports = []
        before = int(time.time() * 1000)
        p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 20, "compression.type": "gzip"})
        for i in range(5):
            p.produce(name, value=f"v{i}".encode(), timestamp=1_600_000_000_000 + i,
                      on_delivery=lambda err, msg: reports.append((err, msg.timestamp())))
        assert p.flush(10) == 0
        after = int(time.time() * 1000)
        assert all(err is None and kind == TIMESTAMP_LOG_APPEND_TIME and before <= ts <= after
                   for err, (kind, ts) in reports), reports
        p.produce(own, value=b"mine", timestamp=1_600_000_000_000)
        assert p.flush(10) == 0
        assert [m.timestamp() for m in kafka_read(b.bootstrap, own, 1)] == [(TIMESTAMP_CREATE_TIME, 1_600_000_000_000)]
        got = kafka_read(b.bootstrap, name, 5)
        stamps = {m.timestamp() for m in got}
        assert len(stamps) == 1, stamps
        kind, stamp = stamps.pop()
        assert kind == TIMESTAMP_LOG_APPEND_TIME and before <= stamp <= after, (kind, stamp, before, after)
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"t-{uuid.uuid4().hex[:6]}"})
        assert c.offsets_for_times([TopicPartition(name, 0, 1_600_000_000_000)], timeout=10)[0].offset == 0
        assert c.offsets_for_times([TopicPartition(name, 0, stamp + 1)], timeout=10)[0].offset == -1
        c.close()
        pulsar_client = pulsar.Client(b.pulsar_url, operation_timeout_seconds=10)
        r = pulsar_client.create_reader(f"persistent://public/default/{name}", pulsar.MessageId.earliest)
        assert [r.read_next(5000).event_timestamp() for _ in range(5)] == [stamp] * 5
        pulsar_client.close()
    finally:
        assert b.stop() == 0, b.log()
