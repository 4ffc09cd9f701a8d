"""Three brokers on one etcd (Debian's etcd-server), driven by Python's
clients: confluent-kafka bootstrapped at one broker produces to a topic
spread over all three, a group bootstrapped at another consumes it, and
pulsar-client at the third reads the same partitions through lookups that
redirect to each owner."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pulsar
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, free_port


class Etcd:
    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="polyport-etcd-")
        self.port, peer = free_port(), free_port()
        client, peer_url = f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{peer}"
        binary = os.environ.get("ETCD") or shutil.which("etcd")
        assert binary, "etcd is missing: install Debian's etcd-server (.ci/run does)"
        log = open(Path(self.dir.name) / "etcd.log", "ab")
        self.proc = subprocess.Popen(
            [binary, "--name", "py", "--data-dir", str(Path(self.dir.name) / "data"),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
             "--initial-cluster", f"py={peer_url}"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "etcd did not listen within 20 s"
                time.sleep(0.05)
        self.url = f"etcd:http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.dir.cleanup()


@pytest.fixture(scope="module")
def cluster():
    etcd = Etcd()
    brokers = [
        # Each broker's id is advertisedAddress:webServicePort (conftest gives each its own port).
        Broker(f"metadataStoreUrl={etcd.url}\nmetadataStoreSessionTimeoutMillis=2000").start()
        for _ in range(3)
    ]
    time.sleep(0.3)  # registrations reach every broker by a watch
    yield brokers
    for b in brokers:
        assert b.stop() == 0, b.log()
        b.dir.cleanup()
    etcd.stop()


def test_clients_bootstrapped_at_any_broker_share_a_topic_spread_over_three(cluster):
    a, b, c = cluster
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    for f in admin.create_topics([NewTopic("py-spread", num_partitions=12, replication_factor=1)]).values():
        f.result(timeout=20)
    metadata = admin.list_topics("py-spread", timeout=10)
    assert len(metadata.brokers) == 3
    leaders = {p.leader for p in metadata.topics["py-spread"].partitions.values()}
    assert len(leaders) == 3, f"every broker leads some partition: {leaders}"

    producer = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5})
    failures = []
    for i in range(600):
        producer.produce("py-spread", value=f"p{i}".encode(), partition=i % 12,
                         on_delivery=lambda err, msg: err and failures.append(err))
        producer.poll(0)
    assert producer.flush(30) == 0
    assert failures == []

    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "py-spread-group",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(["py-spread"])
    seen, deadline = set(), time.time() + 60
    while len(seen) < 600 and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is not None and not m.error():
            value = m.value().decode()
            assert value not in seen, f"{value} delivered twice"
            seen.add(value)
    assert len(seen) == 600
    consumer.commit(asynchronous=False)
    consumer.close()

    client = pulsar.Client(a.pulsar_url, operation_timeout_seconds=20,
                           logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))
    reader = client.subscribe("persistent://public/default/py-spread", "py-pulsar-side",
                              initial_position=pulsar.InitialPosition.Earliest)
    from_pulsar = set()
    while len(from_pulsar) < 600:
        m = reader.receive(timeout_millis=20000)
        reader.acknowledge(m)
        from_pulsar.add(m.data().decode())
    assert from_pulsar == seen
    client.close()


def test_the_admin_api_looks_partitions_up_at_their_owners(cluster):
    import requests

    a, b, c = cluster
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    for f in admin.create_topics([NewTopic("py-rest-lookup", num_partitions=6, replication_factor=1)]).values():
        f.result(timeout=20)
    metadata = admin.list_topics("py-rest-lookup", timeout=10)
    by_kafka_port = {br.port: br for br in cluster}
    owner_of = {p: by_kafka_port[metadata.brokers[m.leader].port]
                for p, m in metadata.topics["py-rest-lookup"].partitions.items()}
    assert len({o.port for o in owner_of.values()}) > 1, "the partitions spread over brokers"
    for partition, owner in owner_of.items():
        # Asked at any broker, the REST lookup names the partition's owner, as Kafka's Metadata does.
        for asked in (a, c):
            r = requests.get(f"{asked.web_url}/lookup/v2/topic/persistent/public/default/"
                             f"py-rest-lookup-partition-{partition}", timeout=10)
            assert r.status_code == 200, r.text
            assert r.json()["brokerUrl"] == owner.pulsar_url, (partition, r.json())
            assert r.json()["httpUrl"] == owner.web_url, (partition, r.json())
    listed = requests.get(f"{b.web_url}/admin/v2/brokers/standalone", timeout=10).json()
    assert sorted(listed) == sorted(f"127.0.0.1:{br.web_port}" for br in cluster)


def test_a_pulsar_producer_and_consumer_follow_their_topic_when_its_broker_stops(cluster):
    """The owner's graceful stop closes the Pulsar producer and consumer;
    the client looks the topic up again (any broker of a multi-host service
    URL answers) and resends what was not acknowledged to the new owner."""
    topic = "persistent://public/default/py-moving"
    service_url = "pulsar://" + ",".join(f"127.0.0.1:{b.pulsar_port}" for b in cluster)
    client = pulsar.Client(service_url, operation_timeout_seconds=30,
                           logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))
    producer = client.create_producer(topic, send_timeout_millis=30000, batching_enabled=False)
    consumer = client.subscribe(topic, "py-moving-sub", initial_position=pulsar.InitialPosition.Earliest)
    for i in range(20):
        producer.send(f"before-{i}".encode())

    # The owner, as Kafka's Metadata names it (one broker serves both protocols).
    alive = [b for b in cluster if b.proc is not None]
    metadata = AdminClient({"bootstrap.servers": alive[0].bootstrap}).list_topics("py-moving", timeout=10)
    leader = metadata.topics["py-moving"].partitions[0].leader
    port = metadata.brokers[leader].port
    owner = next(b for b in cluster if b.port == port)
    assert owner.stop() == 0, owner.log()

    started = time.time()
    for i in range(20):
        producer.send(f"after-{i}".encode())
    moved_in = time.time() - started
    assert moved_in < 10, f"the producer took {moved_in:.1f} s to move"
    got = set()
    while not {f"after-{i}" for i in range(20)} <= got:
        m = consumer.receive(timeout_millis=20000)
        consumer.acknowledge(m)
        got.add(m.data().decode())
    client.close()
