"""Topic configs Kafka applications set at creation or alter later (issue
12): max.message.bytes, message.timestamp.type and compression.type per
topic, applied by Produce; min.insync.replicas and
unclean.leader.election.enable at their one-broker meaning; a replica
assignment naming only this broker. Driven by confluent-kafka's AdminClient,
producer and consumer against the real broker."""

import socket
import struct
import time
import uuid

import pytest
from confluent_kafka import (TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, KafkaError, KafkaException, Producer,
                             TopicCollection)
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic)

from conftest import kafka_read


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def configs_of(client, topic):
    return next(iter(client.describe_configs([ConfigResource("TOPIC", topic)]).values())).result(30)


def incremental(client, topic, *entries):
    resource = ConfigResource("TOPIC", topic, incremental_configs=list(entries))
    next(iter(client.incremental_alter_configs([resource]).values())).result(30)


def send(broker, topic, values, **conf):
    """Produces `values` (one batch when they fit); the delivery errors."""
    errors = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 50, **conf})
    for v in values:
        p.produce(topic, value=v, partition=0, timestamp=1_600_000_000_000,
                  on_delivery=lambda err, _m: errors.append(err) if err else None)
    assert p.flush(30) == 0
    return errors


def codecs_stored(broker, topic):
    """The codec bits of every batch stored in partition 0, read with a raw Fetch v4."""
    topic_b = topic.encode()
    body = struct.pack(">iiiib", -1, 0, 1, 16 << 20, 0)  # replica, max wait, min bytes, max bytes, isolation
    body += struct.pack(">i", 1) + struct.pack(">h", len(topic_b)) + topic_b
    body += struct.pack(">i", 1) + struct.pack(">iqi", 0, 0, 16 << 20)
    header = struct.pack(">hhi", 1, 4, 7) + struct.pack(">h", -1)
    frame = header + body
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", recv(s, 4))[0]
        data = recv(s, size)
    # correlation, throttle, topics(1), name, partitions(1), index, error, hw, lso, aborted(-1 or n), records
    at = 4 + 4 + 4
    (n,) = struct.unpack_from(">h", data, at)
    at += 2 + n + 4
    _index, error, _hw, _lso = struct.unpack_from(">ihqq", data, at)
    at += 4 + 2 + 8 + 8
    (aborted,) = struct.unpack_from(">i", data, at)
    at += 4 + max(aborted, 0) * 16
    (length,) = struct.unpack_from(">i", data, at)
    records = data[at + 4: at + 4 + length]
    assert error == 0, error
    codecs = []
    while len(records) >= 23:
        (batch_len,) = struct.unpack_from(">i", records, 8)
        (attributes,) = struct.unpack_from(">h", records, 21)
        codecs.append(attributes & 7)
        records = records[12 + batch_len:]
    return codecs


def recv(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        assert chunk, "closed"
        out += chunk
    return out


def read(broker, topic, count):
    return kafka_read(broker.bootstrap, topic, count)


def test_settings_given_at_creation_are_applied_by_produce(broker):
    client = admin(broker)
    topic = name("settings")
    config = {"max.message.bytes": "4096", "compression.type": "zstd", "message.timestamp.type": "LogAppendTime",
              "min.insync.replicas": "1", "unclean.leader.election.enable": "false"}
    client.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(30)
    described = configs_of(client, topic)
    for key in ("max.message.bytes", "compression.type", "message.timestamp.type"):
        assert described[key].value == config[key], key
        assert described[key].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, key
    # Sent uncompressed, stored with the topic's codec, stamped by the broker.
    before = int(time.time() * 1000)
    assert send(broker, topic, [b"x" * 100] * 20, **{"compression.type": "none"}) == []
    assert codecs_stored(broker, topic) == [4], "zstd (4)"
    got = read(broker, topic, 20)
    assert [m.value() for m in got] == [b"x" * 100] * 20
    kind, stamp = got[0].timestamp()
    assert kind == TIMESTAMP_LOG_APPEND_TIME and stamp >= before
    # A batch over the topic's 4096 bytes (the broker allows 1 MiB) is refused.
    errors = send(broker, topic, [bytes(range(256)) * 20], **{"compression.type": "none"})
    assert [e.code() for e in errors] == [KafkaError.MSG_SIZE_TOO_LARGE]


def test_settings_are_altered_and_reset(broker):
    client = admin(broker)
    topic = name("altered")
    client.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    assert configs_of(client, topic)["compression.type"].value == "producer"
    SET, DELETE = AlterConfigOpType.SET, AlterConfigOpType.DELETE
    incremental(client, topic, ConfigEntry("compression.type", "gzip", incremental_operation=SET),
                ConfigEntry("message.timestamp.type", "CreateTime", incremental_operation=SET))
    assert configs_of(client, topic)["compression.type"].value == "gzip"
    assert send(broker, topic, [b"a" * 50] * 5, **{"compression.type": "lz4"}) == []
    incremental(client, topic, ConfigEntry("compression.type", None, incremental_operation=DELETE))
    described = configs_of(client, topic)
    assert described["compression.type"].value == "producer"
    assert described["compression.type"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert send(broker, topic, [b"b" * 50] * 5, **{"compression.type": "lz4"}) == []
    assert codecs_stored(broker, topic) == [1, 3], "gzip (recompressed), then lz4 (as sent)"
    assert [m.timestamp() for m in read(broker, topic, 10)][0] == (TIMESTAMP_CREATE_TIME, 1_600_000_000_000)
    with pytest.raises(KafkaException) as refused:
        incremental(client, topic, ConfigEntry("compression.type", "brotli", incremental_operation=SET))
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG
    with pytest.raises(KafkaException) as refused:
        incremental(client, topic, ConfigEntry("min.insync.replicas", "2", incremental_operation=SET))
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG


def test_a_replica_assignment_on_this_broker_alone_is_served(broker):
    client = admin(broker)
    topic = name("assigned")
    client.create_topics([NewTopic(topic, 3, replica_assignment=[[0], [0], [0]])])[topic].result(30)
    assert len(client.list_topics(topic, timeout=10).topics[topic].partitions) == 3
    elsewhere = name("elsewhere")
    refused = client.create_topics([NewTopic(elsewhere, 2, replica_assignment=[[0], [1]])])[elsewhere]
    with pytest.raises(KafkaException) as e:
        refused.result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT
    assert elsewhere not in client.list_topics(timeout=10).topics


def test_partitions_added_on_this_broker_tuning_configs_and_authorized_operations(broker):
    client = admin(broker)
    topic = name("grown")
    client.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    client.create_partitions([NewPartitions(topic, 3, replica_assignment=[[0], [0]])])[topic].result(30)
    assert len(client.list_topics(topic, timeout=10).topics[topic].partitions) == 3
    with pytest.raises(KafkaException) as e:
        client.create_partitions([NewPartitions(topic, 4, replica_assignment=[[7]])])[topic].result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT
    # Kafka's log-file tuning configs are accepted (without effect) when altered too.
    incremental(client, topic, ConfigEntry("flush.ms", "1000", incremental_operation=AlterConfigOpType.SET))
    # No authorizer: every operation the resource supports, as Kafka reports it.
    cluster = client.describe_cluster(include_authorized_operations=True).result(30)
    assert len(cluster.authorized_operations) == 7
    described = client.describe_topics(TopicCollection([topic]), include_authorized_operations=True)[topic].result(30)
    assert len(described.authorized_operations) == 8
