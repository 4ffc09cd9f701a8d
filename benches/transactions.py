"""Transactional produce against idempotent produce, in one run, with a real
client (confluent-kafka / librdkafka) against target/release/broker started
here.

Both sides send the same records (1 KiB values, acks=all, idempotence on,
one partition) from one producer. The transactional side sends them in
transactions of TXN_RECORDS records (begin, produce, commit_transaction,
which flushes and waits for EndTxn: the coordinator's PrepareCommit is
durable; the markers follow). Rounds alternate the two sides, so drift of
the shared machine falls on both. Reported: MB/s of each side (mean over the
rounds), their ratio, and the latency of commit_transaction (p50, p99).

A transaction's commit costs at least one round trip to the coordinator and
one durable append of its state after the records are acknowledged: with
small transactions that fixed cost is what the ratio measures, so the script
also runs larger ones (TXN_SIZES).

The same rounds then run against Apache Kafka when `make bench-peer` has
fetched it (its jars in ~/.cache/polyport-peer/kafka-4.4.0/lib, or
PEER_KAFKA_LIB): one KRaft broker+controller with a 1 GB heap and Kafka's
defaults (it does not fsync on its own, so its acks=all and its commits do
not wait for the disk, where Polyport's wait for an fsync), so that each
broker's transactional/idempotent ratio can be set beside the other's.

Run: `make bench-transactions`, or .venv/bin/python benches/transactions.py
after `cargo build --release -p polyport-host -p polyport-kafka`.
Knobs: BENCH_RECORDS (per side and round, default 100000), BENCH_ROUNDS (3),
TXN_SIZES (comma-separated records per transaction, default 100,1000),
PEER=0 to leave Apache Kafka out.
"""

import os
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
RECORDS = int(os.environ.get("BENCH_RECORDS", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
TXN_SIZES = [int(n) for n in os.environ.get("TXN_SIZES", "100,1000").split(",")]
VALUE = os.urandom(1024)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """target/release/broker on free ports with its own data directory."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="polyport-bench-txn-")
        base = Path(self.dir.name)
        (base / "protocols").mkdir()
        (base / "protocols" / "libkafka.so").write_bytes((TARGET / "libkafka.so").read_bytes())
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        conf = base / "broker.conf"
        conf.write_text(
            "messagingProtocols=kafka\n"
            f"protocolHandlerDirectory={base / 'protocols'}\n"
            f"dataDirectory={base / 'data'}\n"
            "advertisedAddress=127.0.0.1\n"
            f"kafkaListeners=PLAINTEXT://{self.bootstrap}\n"
            f"brokerServicePort={free_port()}\n"
            f"webServicePort={free_port()}\n"
        )
        self.log = open(base / "broker.log", "ab")
        self.proc = subprocess.Popen([str(TARGET / "broker"), "--config", str(conf)], stdout=self.log,
                                     stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        while "broker ready" not in (base / "broker.log").read_text(errors="replace"):
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"broker did not start: {(base / 'broker.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
        self.dir.cleanup()


PEER_LIB = Path(os.environ.get("PEER_KAFKA_LIB", Path.home() / ".cache/polyport-peer/kafka-4.4.0/lib"))


class KafkaBroker:
    """Apache Kafka (KRaft, one combined broker and controller) from the jars
    `make bench-peer` fetched, with the settings benches/peer.sh gives it."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="polyport-bench-txn-kafka-")
        base = Path(self.dir.name)
        self.port, ctrl = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        conf = base / "server.properties"
        conf.write_text(
            "process.roles=broker,controller\nnode.id=1\n"
            f"controller.quorum.voters=1@127.0.0.1:{ctrl}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{ctrl}\n"
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}\n"
            "controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n"
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
            f"log.dirs={base / 'data'}\nnum.partitions=1\noffsets.topic.replication.factor=1\n"
            "transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n"
            "group.initial.rebalance.delay.ms=0\n"
        )
        cp = f"{PEER_LIB}/*"
        cluster = subprocess.run(["java", "-cp", cp, "kafka.tools.StorageTool", "random-uuid"], capture_output=True,
                                 text=True, timeout=60, check=True).stdout.strip().splitlines()[-1]
        subprocess.run(["java", "-cp", cp, "kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(conf)],
                       capture_output=True, timeout=60, check=True)
        self.log = open(base / "kafka.log", "ab")
        self.proc = subprocess.Popen(["java", "-Xms1g", "-Xmx1g", "-XX:+UseG1GC", "-cp", cp, "kafka.Kafka", str(conf)],
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.time() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("Apache Kafka did not start")
                time.sleep(0.1)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)
        self.dir.cleanup()


def producer(bootstrap, txn_id=None):
    config = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
              "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 2_000_000}
    if txn_id:
        config["transactional.id"] = txn_id
    p = Producer(config)
    if txn_id:
        p.init_transactions(30)
    return p


def produce(p, topic, count):
    for _ in range(count):
        while True:
            try:
                p.produce(topic, VALUE, partition=0)
                break
            except BufferError:
                p.poll(0.001)


def idempotent_round(bootstrap, topic):
    p = producer(bootstrap)
    start = time.perf_counter()
    produce(p, topic, RECORDS)
    assert p.flush(120) == 0
    return RECORDS * len(VALUE) / (time.perf_counter() - start) / 1e6


def transactional_round(bootstrap, topic, per_txn, commits):
    p = producer(bootstrap, f"bench-{uuid.uuid4().hex[:8]}")
    start = time.perf_counter()
    sent = 0
    while sent < RECORDS:
        n = min(per_txn, RECORDS - sent)
        p.begin_transaction()
        produce(p, topic, n)
        t = time.perf_counter()
        p.commit_transaction(60)
        commits.append(time.perf_counter() - t)
        sent += n
    return RECORDS * len(VALUE) / (time.perf_counter() - start) / 1e6


def measure(name, broker):
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        topic = "bench-txn"
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        # Warm-up: the first touch of memory is slow on these machines.
        idempotent_round(broker.bootstrap, topic)
        rows = []
        for per_txn in TXN_SIZES:
            idem, txn, commits = [], [], []
            for _ in range(ROUNDS):
                idem.append(idempotent_round(broker.bootstrap, topic))
                txn.append(transactional_round(broker.bootstrap, topic, per_txn, commits))
            commits.sort()
            p50 = commits[len(commits) // 2] * 1000
            p99 = commits[min(len(commits) - 1, int(len(commits) * 0.99))] * 1000
            rows.append((per_txn, statistics.mean(idem), statistics.mean(txn), p50, p99))
        return [(name, *row) for row in rows]
    finally:
        broker.stop()


def main():
    rows = measure("Polyport", Broker())
    if os.environ.get("PEER", "1") != "0" and PEER_LIB.is_dir():
        rows += measure("Apache Kafka", KafkaBroker())
    print(f"records per side and round: {RECORDS} x 1 KiB, acks=all, 1 partition, {ROUNDS} rounds")
    print("| broker | records per transaction | idempotent MB/s | transactional MB/s | ratio | commit p50 ms | commit p99 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, per_txn, idem, txn, p50, p99 in rows:
        print(f"| {name} | {per_txn} | {idem:.1f} | {txn:.1f} | {txn / idem:.3f} | {p50:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
