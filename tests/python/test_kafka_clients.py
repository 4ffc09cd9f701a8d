"""Unchanged Kafka clients against the real broker: confluent-kafka
(librdkafka) and kafka-python produce, consume, manage topics and look up
offsets by time."""

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.admin import NewTopic as KpNewTopic


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def produce(bootstrap, topic, messages, **conf):
    """messages: (key, value, headers, timestamp, partition) tuples; returns delivered offsets."""
    delivered = []
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            delivered.append((msg.partition(), msg.offset()))

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **conf})
    for key, value, headers, ts, partition in messages:
        kwargs = {"key": key, "value": value, "headers": headers, "on_delivery": on_delivery}
        if ts is not None:
            kwargs["timestamp"] = ts
        if partition is not None:
            kwargs["partition"] = partition
        p.produce(topic, **kwargs)
    assert p.flush(30) == 0
    assert not errors, errors
    return delivered


def consume_all(bootstrap, topic, partitions, count, offset=0, timeout=30):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, offset) for p in partitions])
    out = []
    deadline = time.time() + timeout
    while len(out) < count and time.time() < deadline:
        msg = c.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise AssertionError(msg.error())
        out.append(msg)
    c.close()
    assert len(out) == count, f"consumed {len(out)} of {count}"
    return out


def test_round_trip_keys_headers_nulls_and_timestamps(broker):
    topic = name("roundtrip")
    ts = int(time.time() * 1000) - 60_000
    messages = [
        (b"k1", b"v1", [("h1", b"x"), ("h2", b"")], ts, None),
        (None, b"no key", None, ts + 1, None),
        (b"tombstone", None, [("dup", b"1"), ("dup", b"2")], ts + 2, None),
        (bytes(range(256)), b"\x00\xff binary", None, ts + 3, None),
    ]
    delivered = produce(broker.bootstrap, topic, messages)
    assert [o for _, o in delivered] == [0, 1, 2, 3]
    got = consume_all(broker.bootstrap, topic, [0], 4)
    for msg, (key, value, headers, t, _) in zip(got, messages):
        assert msg.key() == key
        assert msg.value() == value
        assert (msg.headers() or []) == (headers or [])
        assert msg.timestamp()[1] == t


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_each_compression_round_trips(broker, codec):
    topic = name(f"codec-{codec}")
    messages = [(f"k{i}".encode(), (f"value {i} " * 50).encode(), None, None, None) for i in range(200)]
    produce(broker.bootstrap, topic, messages, **{"compression.type": codec})
    got = consume_all(broker.bootstrap, topic, [0], 200)
    assert [m.value() for m in got] == [m[1] for m in messages]
    assert [m.offset() for m in got] == list(range(200))


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_list_offsets_by_time_and_max_timestamp_find_the_record(broker, compression):
    from confluent_kafka.admin import OffsetSpec

    topic = name(f"times-{compression}")
    base = 1_700_000_000_000
    # One batch (linger), timestamps out of order: the largest is in the middle.
    stamps = [1000, 5000, 3000, 4000, 2000]
    messages = [(None, f"m{i}".encode(), None, base + t, None) for i, t in enumerate(stamps)]
    produce(broker.bootstrap, topic, messages, **{"linger.ms": 50, "compression.type": compression})
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    tp = TopicPartition(topic, 0)

    def listed(spec):
        info = client.list_offsets({tp: spec})[tp].result(30)
        return info.offset, info.timestamp

    assert listed(OffsetSpec.max_timestamp()) == (1, base + 5000)
    assert listed(OffsetSpec.for_timestamp(base + 2500)) == (1, base + 5000), "the record, not the batch's start"
    assert listed(OffsetSpec.for_timestamp(base + 1000)) == (0, base + 1000)
    assert listed(OffsetSpec.for_timestamp(base + 6000))[0] == -1
    assert listed(OffsetSpec.earliest())[0] == 0
    assert listed(OffsetSpec.latest())[0] == 5
    # A later batch with a smaller timestamp does not move the max.
    produce(broker.bootstrap, topic, [(None, b"late", None, base + 10, None)])
    assert listed(OffsetSpec.max_timestamp()) == (1, base + 5000)


def test_fetch_from_inside_a_batch_returns_that_batch(broker):
    topic = name("mid-batch")
    messages = [(None, f"m{i}".encode(), None, None, None) for i in range(10)]
    produce(broker.bootstrap, topic, messages, **{"linger.ms": 50})
    got = consume_all(broker.bootstrap, topic, [0], 3, offset=7)
    assert [m.offset() for m in got] == [7, 8, 9]
    assert [m.value() for m in got] == [b"m7", b"m8", b"m9"]


def test_admin_create_list_delete_and_many_partitions(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = name("admin")
    futures = admin.create_topics([NewTopic(topic, num_partitions=16, replication_factor=1)])
    futures[topic].result(30)
    meta = admin.list_topics(timeout=10)
    assert len(meta.topics[topic].partitions) == 16
    # Spread over all partitions, read back from all of them.
    messages = [(None, f"p{i % 16}-{i}".encode(), None, None, i % 16) for i in range(160)]
    produce(broker.bootstrap, topic, messages)
    got = consume_all(broker.bootstrap, topic, range(16), 160)
    assert sorted(m.value() for m in got) == sorted(m[1] for m in messages)
    for m in got:
        assert m.value().startswith(f"p{m.partition()}-".encode())
    again = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    with pytest.raises(Exception) as exists:
        again[topic].result(30)
    assert "TOPIC_ALREADY_EXISTS" in str(exists.value) or "already exists" in str(exists.value)
    admin.delete_topics([topic])[topic].result(30)
    assert topic not in admin.list_topics(timeout=10).topics


def test_messages_near_and_over_the_size_limit(broker):
    topic = name("sizes")
    big = b"b" * (1024 * 1024 - 2048)  # just under maxMessageSize=1 MiB with batch overhead
    delivered = produce(broker.bootstrap, topic, [(None, big, None, None, None)], **{"message.max.bytes": 2_000_000})
    assert delivered == [(0, 0)]
    got = consume_all(broker.bootstrap, topic, [0], 1)
    assert got[0].value() == big
    errors = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 3_000_000})
    p.produce(topic, b"x" * 1_500_000, on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, errors


def test_kafka_python_produce_consume_admin_and_offsets_for_times(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    topic = name("kp")
    admin.create_topics([KpNewTopic(topic, num_partitions=2, replication_factor=1)])
    assert topic in admin.list_topics()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type="gzip", linger_ms=0)
    base = int(time.time() * 1000) - 100_000
    for i in range(20):
        producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 2,
                      headers=[("n", str(i).encode())], timestamp_ms=base + i * 1000).get(timeout=30)
    producer.send(topic, key=b"null", value=None, partition=0, timestamp_ms=base + 50_000).get(timeout=30)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    tp0, tp1 = KpTopicPartition(topic, 0), KpTopicPartition(topic, 1)
    consumer.assign([tp0, tp1])
    consumer.seek_to_beginning()
    seen = [r for r in consumer]
    assert len(seen) == 21
    by_key = {r.key: r for r in seen}
    assert by_key[b"k3"].value == b"v3" and by_key[b"k3"].headers == [("n", b"3")]
    assert by_key[b"k3"].timestamp == base + 3000
    assert by_key[b"null"].value is None
    assert consumer.end_offsets([tp0, tp1]) == {tp0: 11, tp1: 10}
    assert consumer.beginning_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
    found = consumer.offsets_for_times({tp0: base + 4000, tp1: base + 4500, KpTopicPartition(topic, 0): base + 4000})
    assert found[tp0].offset == 2  # partition 0 holds k0, k2, k4: k4 is its offset 2
    assert found[tp1].offset == 2  # partition 1 holds k1, k3, k5: k5 (base+5000) is its offset 2
    late = consumer.offsets_for_times({tp1: base + 10_000_000})
    assert late[tp1] is None
    consumer.close()
    admin.delete_topics([topic])
    admin.close()


def test_idempotent_producers_store_each_record_once_in_order(broker):
    topic = name("idempotent")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(15)
    delivered = produce(broker.bootstrap, topic, [(None, f"c{i}".encode(), None, None, i % 2) for i in range(400)],
                        **{"enable.idempotence": True, "max.in.flight.requests.per.connection": 5})
    assert len(delivered) == 400
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, linger_ms=5)
    for i in range(100):
        kp.send(topic, value=f"k{i}".encode(), partition=0)
    kp.flush(30)
    kp.close()
    got = consume_all(broker.bootstrap, topic, [0], 300)
    values = [m.value() for m in got]
    assert values[:200] == [f"c{i}".encode() for i in range(0, 400, 2)]
    assert values[200:] == [f"k{i}".encode() for i in range(100)]
    assert [m.offset() for m in got] == list(range(300)), "dense, nothing twice"
