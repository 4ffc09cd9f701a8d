"""One producer's records stay in the order it sent them (issue 12, item 1).

Kafka serves the requests of one connection in order, so a producer without
retries finds its records at increasing offsets in the order it produced
them, however many requests it pipelines. librdkafka with tiny batches and
five requests in flight (the Java producer's default) against fresh topics
(still being auto-created when the first requests arrive) is the case that
reordered them before the connection's appends were put in order."""

import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

VALUES = 300
TOPICS = 20


def produce_in_order(bootstrap, topic, codec):
    errors = []
    p = Producer({
        "bootstrap.servers": bootstrap,
        "linger.ms": 0,
        "batch.num.messages": 3,
        "enable.idempotence": False,
        "max.in.flight": 5,
        "compression.codec": codec,
    })
    for v in range(VALUES):
        p.produce(topic, value=str(v).encode(), partition=0,
                  on_delivery=lambda err, _msg: err is not None and errors.append(err))
        p.poll(0)
    assert p.flush(60) == 0
    assert not errors, errors


def stored_values(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    try:
        while True:
            msg = c.poll(10)
            assert msg is not None, f"timed out after {len(out)} records"
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    break
                raise AssertionError(msg.error())
            out.append((msg.offset(), int(msg.value())))
    finally:
        c.close()
    return out


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_pipelined_small_batches_keep_their_order(broker, codec):
    for _ in range(TOPICS // 2):
        topic = f"order-{uuid.uuid4().hex[:8]}"
        produce_in_order(broker.bootstrap, topic, codec)
        stored = stored_values(broker.bootstrap, topic)
        misplaced = [(o, v) for o, v in stored if o != v]
        assert not misplaced, f"{topic}: {len(misplaced)} values not at their own offset, first {misplaced[:6]}"
        assert len(stored) == VALUES
