"""Committed offsets for standalone consumers (assign + commit), with
confluent-kafka and kafka-python: commits survive a new consumer and are read
back; a consumer resumes from them."""

import time
import uuid

from confluent_kafka import OFFSET_STORED, Consumer, Producer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition
from kafka.structs import OffsetAndMetadata


def fill(bootstrap, topic, count):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(count):
        p.produce(topic, value=f"m{i}".encode(), partition=0)
    assert p.flush(30) == 0


def consumer(bootstrap, group):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest"})


def poll_values(c, count, timeout=20):
    out, deadline = [], time.time() + timeout
    while len(out) < count and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            out.append(m.value())
    return out


def test_confluent_commit_and_resume(broker):
    topic, group = f"offsets-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    fill(broker.bootstrap, topic, 10)
    c = consumer(broker.bootstrap, group)
    c.assign([TopicPartition(topic, 0, 0)])
    assert poll_values(c, 4) == [b"m0", b"m1", b"m2", b"m3"]
    c.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
    assert c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == 4
    c.close()
    # A new consumer of the group resumes from the committed offset.
    c = consumer(broker.bootstrap, group)
    c.assign([TopicPartition(topic, 0, OFFSET_STORED)])
    assert poll_values(c, 2) == [b"m4", b"m5"]
    c.close()
    # Another group has committed nothing.
    other = consumer(broker.bootstrap, group + "-other")
    assert other.committed([TopicPartition(topic, 0)], timeout=10)[0].offset < 0
    other.close()


def test_kafka_python_commit_and_committed(broker):
    topic, group = f"offsets-kp-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    fill(broker.bootstrap, topic, 10)
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    tp = KpTopicPartition(topic, 0)
    c.assign([tp])
    c.commit({tp: OffsetAndMetadata(7, "", -1)})
    assert c.committed(tp) == 7
    c.close()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False,
                      consumer_timeout_ms=5000)
    c.assign([tp])
    assert [r.value for r in c] == [b"m7", b"m8", b"m9"]
    c.close()
