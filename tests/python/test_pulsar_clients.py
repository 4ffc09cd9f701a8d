"""The Pulsar binary protocol with the Python pulsar-client (the C++ client)
against the real broker: produce and consume with every subscription type,
readers, partitioned topics, seek, negative acks and redelivery, and
subscriptions that resume where they acknowledged."""

import time
import uuid

import pulsar
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker


def topic(prefix):
    return f"persistent://public/default/{prefix}-{uuid.uuid4().hex[:8]}"


def receive_all(consumer, count, timeout_ms=5000):
    out = []
    while len(out) < count:
        m = consumer.receive(timeout_millis=timeout_ms)
        out.append(m)
        consumer.acknowledge(m)
    return out


def test_round_trip_keeps_keys_properties_and_times(pulsar_client):
    t = topic("rt")
    consumer = pulsar_client.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Exclusive)
    producer = pulsar_client.create_producer(t, batching_enabled=False)
    ids = [producer.send(f"m{i}".encode(), partition_key=f"k{i}", properties={"i": str(i)}, event_timestamp=1000 + i)
           for i in range(5)]
    got = receive_all(consumer, 5)
    assert [m.data() for m in got] == [f"m{i}".encode() for i in range(5)]
    assert [m.partition_key() for m in got] == [f"k{i}" for i in range(5)]
    assert [m.properties() for m in got] == [{"i": str(i)} for i in range(5)]
    assert [m.event_timestamp() for m in got] == [1000 + i for i in range(5)]
    assert all(m.publish_timestamp() > 0 for m in got)
    assert [str(m.message_id()) for m in got] == [str(i) for i in ids]
    producer.close()
    consumer.close()


def test_batches_are_split_by_the_client_and_acked_per_message(pulsar_client):
    t = topic("batch")
    consumer = pulsar_client.subscribe(t, "s")
    producer = pulsar_client.create_producer(t, batching_enabled=True, batching_max_messages=10,
                                      batching_max_publish_delay_ms=50)
    for i in range(30):
        producer.send_async(f"b{i}".encode(), None)
    producer.flush()
    got = receive_all(consumer, 30)
    assert [m.data() for m in got] == [f"b{i}".encode() for i in range(30)]
    with pytest.raises(pulsar.Timeout):
        consumer.receive(timeout_millis=500)
    consumer.close()


def test_a_subscription_resumes_after_what_it_acknowledged(pulsar_client):
    t = topic("resume")
    c = pulsar_client.subscribe(t, "durable", initial_position=pulsar.InitialPosition.Earliest)
    p = pulsar_client.create_producer(t, batching_enabled=False)
    for i in range(10):
        p.send(f"r{i}".encode())
    receive_all(c, 4)
    c.close()
    c = pulsar_client.subscribe(t, "durable")
    assert [m.data() for m in receive_all(c, 6)] == [f"r{i}".encode() for i in range(4, 10)]
    c.close()
    # A new subscription starts at the end by default, or at the beginning if asked.
    late = pulsar_client.subscribe(t, "late")
    with pytest.raises(pulsar.Timeout):
        late.receive(timeout_millis=500)
    early = pulsar_client.subscribe(t, "early", initial_position=pulsar.InitialPosition.Earliest)
    assert len(receive_all(early, 10)) == 10


def test_exclusive_refuses_a_second_consumer(pulsar_client):
    t = topic("excl")
    first = pulsar_client.subscribe(t, "only", consumer_type=pulsar.ConsumerType.Exclusive)
    with pytest.raises(pulsar.ConsumerBusy):
        pulsar_client.subscribe(t, "only", consumer_type=pulsar.ConsumerType.Exclusive)
    first.close()


def test_shared_consumers_split_the_messages(pulsar_client):
    t = topic("shared")
    a = pulsar_client.subscribe(t, "work", consumer_type=pulsar.ConsumerType.Shared, receiver_queue_size=10)
    b = pulsar_client.subscribe(t, "work", consumer_type=pulsar.ConsumerType.Shared, receiver_queue_size=10)
    p = pulsar_client.create_producer(t, batching_enabled=False)
    for i in range(40):
        p.send(f"s{i}".encode())
    seen = {}
    deadline = time.time() + 20
    while len(seen) < 40 and time.time() < deadline:
        for name, c in (("a", a), ("b", b)):
            try:
                m = c.receive(timeout_millis=100)
            except pulsar.Timeout:
                continue
            assert m.data() not in seen, "delivered twice"
            seen[m.data()] = name
            c.acknowledge(m)
    assert len(seen) == 40
    assert set(seen.values()) == {"a", "b"}


def test_failover_hands_over_when_the_active_consumer_leaves(pulsar_client):
    t = topic("failover")
    p = pulsar_client.create_producer(t, batching_enabled=False)
    a = pulsar_client.subscribe(t, "fo", consumer_type=pulsar.ConsumerType.Failover,
                         initial_position=pulsar.InitialPosition.Earliest)
    b = pulsar_client.subscribe(t, "fo", consumer_type=pulsar.ConsumerType.Failover)
    for i in range(6):
        p.send(f"f{i}".encode())
    assert [m.data() for m in receive_all(a, 3)] == [b"f0", b"f1", b"f2"]
    with pytest.raises(pulsar.Timeout):
        b.receive(timeout_millis=300)
    a.close()
    assert [m.data() for m in receive_all(b, 3)] == [b"f3", b"f4", b"f5"]


def test_key_shared_keeps_each_key_on_one_consumer(pulsar_client):
    t = topic("keyshared")
    a = pulsar_client.subscribe(t, "ks", consumer_type=pulsar.ConsumerType.KeyShared)
    b = pulsar_client.subscribe(t, "ks", consumer_type=pulsar.ConsumerType.KeyShared)
    p = pulsar_client.create_producer(t, batching_enabled=False)
    for i in range(40):
        p.send(f"{i}".encode(), partition_key=f"key-{i % 5}")
    owner = {}
    count = 0
    deadline = time.time() + 20
    while count < 40 and time.time() < deadline:
        for name, c in (("a", a), ("b", b)):
            try:
                m = c.receive(timeout_millis=100)
            except pulsar.Timeout:
                continue
            assert owner.setdefault(m.partition_key(), name) == name, "a key moved between consumers"
            c.acknowledge(m)
            count += 1
    assert count == 40


def test_readers_start_where_they_are_told(pulsar_client):
    t = topic("reader")
    p = pulsar_client.create_producer(t, batching_enabled=False)
    ids = [p.send(f"x{i}".encode()) for i in range(5)]
    r = pulsar_client.create_reader(t, pulsar.MessageId.earliest)
    assert [r.read_next(5000).data() for _ in range(5)] == [f"x{i}".encode() for i in range(5)]
    assert not r.has_message_available()
    r.close()
    r = pulsar_client.create_reader(t, ids[2])
    assert r.read_next(5000).data() == b"x3", "a reader starts after its start message"
    r.close()
    r = pulsar_client.create_reader(t, ids[2], start_message_id_inclusive=True)
    assert r.read_next(5000).data() == b"x2"
    r.close()


def test_seek_and_negative_ack_redeliver(pulsar_client):
    t = topic("seek")
    p = pulsar_client.create_producer(t, batching_enabled=False)
    c = pulsar_client.subscribe(t, "sk", initial_position=pulsar.InitialPosition.Earliest,
                         negative_ack_redelivery_delay_ms=100)
    for i in range(5):
        p.send(f"q{i}".encode())
    m = c.receive(timeout_millis=5000)
    assert m.data() == b"q0"
    c.negative_acknowledge(m)
    seen = []
    while b"q0" not in [x.data() for x in seen]:
        x = c.receive(timeout_millis=5000)
        seen.append(x)
        if x.data() != b"q0":
            c.acknowledge(x)
    again = seen[-1]
    assert again.redelivery_count() >= 1, "the redelivery is counted"
    c.acknowledge(again)
    with pytest.raises(pulsar.Timeout):
        while True:  # whatever else was redelivered with it, then nothing
            c.acknowledge(c.receive(timeout_millis=500))
    c.seek(pulsar.MessageId.earliest)
    time.sleep(0.5)
    assert c.receive(timeout_millis=5000).data() == b"q0", "seek moved the subscription back"


def test_a_partitioned_topic_made_by_kafka_admin_serves_pulsar_clients(broker, pulsar_client):
    name = f"parted-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, 3, 1)])[name].result(15)
    t = f"persistent://public/default/{name}"
    c = pulsar_client.subscribe(t, "all", initial_position=pulsar.InitialPosition.Earliest)
    p = pulsar_client.create_producer(t, batching_enabled=False,
                               message_routing_mode=pulsar.PartitionsRoutingMode.RoundRobinDistribution)
    for i in range(9):
        p.send(f"p{i}".encode())
    got = receive_all(c, 9)
    assert sorted(m.data() for m in got) == sorted(f"p{i}".encode() for i in range(9))
    assert {m.topic_name().rsplit("-partition-", 1)[1] for m in got} == {"0", "1", "2"}


def test_unknown_topics_get_errors_when_auto_creation_is_off():
    b = Broker("allowAutoTopicCreation=false\n").start()
    try:
        c = pulsar.Client(b.pulsar_url, operation_timeout_seconds=5)
        with pytest.raises(Exception, match="TopicNotFound|Topic Not Found|not found"):
            c.create_producer("persistent://public/default/missing")
        c.close()
    finally:
        assert b.stop() == 0


def test_acknowledged_sends_survive_kill_9():
    import signal
    b = Broker().start()
    try:
        c = pulsar.Client(b.pulsar_url, operation_timeout_seconds=10)
        t = topic("durable")
        p = c.create_producer(t, batching_enabled=True, batching_max_publish_delay_ms=5)
        for i in range(50):
            p.send_async(f"d{i}".encode(), None)
        p.flush()  # every receipt is in: each send is on disk
        c.close()
        assert b.stop(signal.SIGKILL) == -signal.SIGKILL
        b.start()
        c = pulsar.Client(b.pulsar_url, operation_timeout_seconds=10)
        r = c.create_reader(t, pulsar.MessageId.earliest)
        assert [r.read_next(5000).data() for _ in range(50)] == [f"d{i}".encode() for i in range(50)]
        c.close()
    finally:
        b.stop()


def test_unsubscribe_seek_by_time_and_topic_patterns(pulsar_client):
    import re
    t = topic("misc")
    p = pulsar_client.create_producer(t, batching_enabled=False)
    c = pulsar_client.subscribe(t, "gone", initial_position=pulsar.InitialPosition.Earliest)
    for i in range(4):
        p.send(f"u{i}".encode())
        time.sleep(0.02)
    receive_all(c, 4)
    c.unsubscribe()
    # The subscription is gone: the same name starts over (from the end by default).
    c = pulsar_client.subscribe(t, "gone", initial_position=pulsar.InitialPosition.Earliest)
    assert [m.data() for m in receive_all(c, 4)] == [b"u0", b"u1", b"u2", b"u3"]
    # Seek by publish time: back to the first message published at or after it.
    c.seek(int(time.time() * 1000) - 10_000)
    time.sleep(0.3)
    assert c.receive(timeout_millis=5000).data() == b"u0"
    c.close()
    # A pattern subscription lists the namespace's topics (GET_TOPICS_OF_NAMESPACE).
    local = t.rsplit("/", 1)[1]
    pattern = pulsar_client.subscribe(re.compile(f"persistent://public/default/{local}"), "by-pattern",
                               initial_position=pulsar.InitialPosition.Earliest)
    assert pattern.receive(timeout_millis=10000).data() == b"u0"
    pattern.close()
