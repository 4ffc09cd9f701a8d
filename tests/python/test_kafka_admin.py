"""Admin APIs with unchanged clients against the real broker: topic configs
(describe, alter, incremental alter, reset), create partitions, delete
records and describe cluster, with confluent-kafka (librdkafka) and
kafka-python, each checked by its effect on producers and consumers."""

import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
)
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import KafkaAdminClient
from kafka.admin import NewTopic as KpNewTopic


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def admin(broker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create(broker, topic, partitions):
    client = admin(broker)  # kept alive until the future completes
    client.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(30)


def produce(broker, topic, count, partition=0):
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for i in range(count):
        p.produce(topic, value=f"m{i}".encode(), partition=partition)
        p.poll(0)
    assert p.flush(30) == 0


def first_offsets(broker, topic, partition, count, offset=OFFSET_BEGINNING):
    """Offsets of the first `count` messages a consumer assigned at `offset` receives."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, offset)])
    got = []
    deadline = time.time() + 30
    while len(got) < count and time.time() < deadline:
        msg = c.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise AssertionError(msg.error())
        got.append(msg.offset())
    c.close()
    return got


def topic_configs(client, topic):
    futures = client.describe_configs([ConfigResource("TOPIC", topic)])
    return next(iter(futures.values())).result(30)


def test_confluent_topic_configs_describe_alter_and_reset(broker):
    client = admin(broker)
    topic = name("cfg")
    create(broker, topic, 1)
    configs = topic_configs(client, topic)
    default_ms = configs["retention.ms"].value
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["retention.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["cleanup.policy"].value == "delete"
    assert configs["max.message.bytes"].value == "1048576"  # maxMessageSize in conftest
    assert configs["max.message.bytes"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert not configs["max.message.bytes"].is_read_only

    def incremental(*entries):
        resource = ConfigResource("TOPIC", topic, incremental_configs=list(entries))
        next(iter(client.incremental_alter_configs([resource]).values())).result(30)

    SET, DELETE = AlterConfigOpType.SET, AlterConfigOpType.DELETE
    incremental(ConfigEntry("retention.ms", "3600000", incremental_operation=SET))
    configs = topic_configs(client, topic)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["retention.bytes"].source == ConfigSource.DEFAULT_CONFIG.value

    incremental(ConfigEntry("retention.ms", None, incremental_operation=DELETE))
    configs = topic_configs(client, topic)
    assert configs["retention.ms"].value == default_ms
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value

    with pytest.raises(KafkaException) as refused:
        incremental(ConfigEntry("cleanup.policy", "compact", incremental_operation=SET))
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert "cleanup.policy" in refused.value.args[0].str()
    with pytest.raises(KafkaException) as refused:
        incremental(ConfigEntry("retention.bytes", "lots", incremental_operation=SET))
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG

    # The legacy AlterConfigs.
    resource = ConfigResource("TOPIC", topic, set_config={"retention.bytes": "1048576"})
    next(iter(client.alter_configs([resource]).values())).result(30)
    configs = topic_configs(client, topic)
    assert configs["retention.bytes"].value == "1048576"
    assert configs["retention.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    broker_configs = next(iter(client.describe_configs([ConfigResource("BROKER", "0")]).values())).result(30)
    assert broker_configs["message.max.bytes"].value == "1048576"
    assert broker_configs["message.max.bytes"].is_read_only


def test_confluent_create_topics_applies_configs_and_refuses_what_it_cannot_honour(broker):
    client = admin(broker)
    topic = name("with-cfg")
    config = {"retention.ms": "3600000", "cleanup.policy": "delete", "segment.bytes": "1048576"}
    client.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1, config=config)])[topic].result(30)
    configs = topic_configs(client, topic)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["retention.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert "log.retention.ms" not in configs

    def refused(config, says, validate_only=False):
        topic = name("refused")
        futures = client.create_topics([NewTopic(topic, 1, 1, config=config)], validate_only=validate_only)
        with pytest.raises(KafkaException) as raised:
            futures[topic].result(30)
        assert raised.value.args[0].code() == KafkaError.INVALID_CONFIG, raised.value
        assert says in raised.value.args[0].str()
        assert topic not in client.list_topics(timeout=10).topics, "nothing is created"

    refused({"cleanup.policy": "compact"}, "never compacted")
    refused({"retention.ms": "soon"}, "retention.ms")
    refused({"no.such.config": "1"}, "no.such.config")
    refused({"cleanup.policy": "compact"}, "never compacted", validate_only=True)
    checked = name("validated")
    futures = client.create_topics([NewTopic(checked, 1, 1, config={"retention.bytes": "1048576"})], validate_only=True)
    futures[checked].result(30)
    assert checked not in client.list_topics(timeout=10).topics


def test_confluent_create_partitions_and_describe_cluster(broker):
    client = admin(broker)
    topic = name("grow")
    create(broker, topic, 2)
    client.create_partitions([NewPartitions(topic, 5)])[topic].result(30)
    assert len(client.list_topics(topic, timeout=10).topics[topic].partitions) == 5
    produce(broker, topic, 3, partition=4)
    assert first_offsets(broker, topic, 4, 3) == [0, 1, 2]
    with pytest.raises(KafkaException) as refused:
        client.create_partitions([NewPartitions(topic, 3)])[topic].result(30)
    assert refused.value.args[0].code() == KafkaError.INVALID_PARTITIONS

    cluster = client.describe_cluster().result(30)
    assert cluster.cluster_id
    assert cluster.controller.id == 0
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(0, "127.0.0.1", broker.port)]


def test_confluent_delete_records_moves_where_consumers_begin(broker):
    client = admin(broker)
    topic = name("trim")
    create(broker, topic, 1)
    produce(broker, topic, 10)
    tp = TopicPartition(topic, 0, 6)
    deleted = client.delete_records([tp])
    result = next(iter(deleted.values())).result(30)
    assert result.low_watermark == 6
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (6, 10)
    c.close()
    assert first_offsets(broker, topic, 0, 4) == [6, 7, 8, 9]
    # Everything (-1: the high watermark).
    everything = client.delete_records([TopicPartition(topic, 0, -1)])
    assert next(iter(everything.values())).result(30).low_watermark == 10


def test_kafka_python_configs_partitions_records_and_cluster(broker):
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    topic = name("kp-admin")
    client.create_topics([KpNewTopic(topic, num_partitions=1, replication_factor=1)])

    def described(config_filter="all"):
        out = client.describe_configs([KpConfigResource("TOPIC", topic)], config_filter=config_filter)
        return out["topic"][topic]

    assert described()["retention.ms"]["config_source"] == "DEFAULT_CONFIG"
    assert described("modified") == {}
    with_configs = name("kp-cfg")
    client.create_topics([KpNewTopic(with_configs, 1, 1, topic_configs={"retention.bytes": "2097152"})])
    out = client.describe_configs([KpConfigResource("TOPIC", with_configs)], config_filter="modified")
    assert out["topic"][with_configs]["retention.bytes"]["value"] == "2097152"
    client.alter_configs([KpConfigResource("TOPIC", topic, configs={"retention.ms": "7200000"})])
    modified = described("modified")
    assert modified["retention.ms"]["value"] == "7200000"
    assert modified["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    client.reset_configs([KpConfigResource("TOPIC", topic, configs=["retention.ms"])])
    assert described("modified") == {}

    client.create_partitions({topic: 3})
    assert len(client.describe_topics([topic])[0]["partitions"]) == 3

    produce(broker, topic, 8)
    tp = KpTopicPartition(topic, 0)
    result = client.delete_records({tp: 5})
    assert result[tp]["low_watermark"] == 5
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    consumer.assign([tp])
    assert consumer.beginning_offsets([tp]) == {tp: 5}
    consumer.seek_to_beginning()
    assert [r.offset for r in consumer] == [5, 6, 7]
    consumer.close()

    cluster = client.describe_cluster()
    assert cluster["controller_id"] == 0
    assert [(b["broker_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [(0, "127.0.0.1", broker.port)]
    client.close()


def test_altered_retention_deletes_old_segments():
    """retention.bytes and retention.ms set through AlterConfigs take effect:
    whole sealed segments past them are deleted and consumers start later."""
    from conftest import Broker

    b = Broker("managedLedgerMaxSizePerLedgerMbytes=1\nretentionCheckIntervalInSeconds=1\n").start()
    try:
        client = admin(b)
        topic = name("retained")
        create(b, topic, 1)
        p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
        for i in range(4000):
            p.produce(topic, value=b"x" * 1000)
            p.poll(0)
        assert p.flush(30) == 0
        tp = TopicPartition(topic, 0)

        def earliest():
            from confluent_kafka.admin import OffsetSpec

            return client.list_offsets({tp: OffsetSpec.earliest()})[tp].result(30).offset

        def wait_for(predicate, what):
            deadline = time.time() + 20
            while time.time() < deadline:
                if predicate():
                    return
                time.sleep(0.3)
            raise AssertionError(f"{what}: log start still {earliest()}")

        time.sleep(2.5)
        assert earliest() == 0, "the broker's default retention keeps everything"
        incremental = ConfigResource(
            "TOPIC", topic, incremental_configs=[ConfigEntry("retention.bytes", "1048576", incremental_operation=AlterConfigOpType.SET)]
        )
        next(iter(client.incremental_alter_configs([incremental]).values())).result(30)
        wait_for(lambda: earliest() > 0, "retention.bytes=1 MiB")
        kept = 4000 - earliest()
        assert 500 <= kept <= 2100, f"about 1 MiB (whole segments) is kept: {kept} records"
        assert first_offsets(b, topic, 0, 1) == [earliest()], "consumers from the beginning start there"
        # The legacy AlterConfigs replaces the topic's configs: retention.bytes
        # goes back to inherited. The active segment is never deleted: more
        # data seals it, and then it is older than 1 ms.
        legacy = ConfigResource("TOPIC", topic, set_config={"retention.ms": "1"})
        next(iter(client.alter_configs([legacy]).values())).result(30)
        for i in range(2500):
            p.produce(topic, value=b"y" * 1000)
            p.poll(0)
        assert p.flush(30) == 0
        wait_for(lambda: earliest() >= 4000, "retention.ms=1")
    finally:
        assert b.stop() == 0, b.log()
