"""Kafka transactions with real clients against the real broker: a
confluent-kafka transactional producer (`transactional.id`) commits and
aborts; read_committed consumers (confluent-kafka and kafka-python) see
exactly the committed records, read_uncommitted ones every data record, and
neither is ever handed a control record (each marker takes one offset, so the
offsets seen are checked too). An ongoing transaction holds read_committed
back (the last stable offset, read through kafka-python's ListOffsets) until
it ends; a second producer with the same transactional id fences the first
and aborts its transaction; a crashed producer's transaction is aborted by
its timeout, or at once by its successor's InitProducerId; offsets sent to a
transaction (consume-transform-produce) are committed with it, and dropped
when it aborts; and after a kill -9 of the broker, committed, aborted and
open transactions come back as they were, the open one aborted by its
timeout."""

import select
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from conftest import Broker

COMMITTED, UNCOMMITTED = "read_committed", "read_uncommitted"


@pytest.fixture(scope="module")
def broker():
    # The consume-transform-produce test joins a group: no initial rebalance
    # delay; timed-out transactions are looked for every second.
    b = Broker("groupInitialRebalanceDelayMs=0\ntransactionAbortTimedOutTransactionCleanupIntervalMs=1000\n").start()
    yield b
    assert b.stop() == 0, b.log()
    b.dir.cleanup()


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_topic(bootstrap, topic, partitions=1):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(15)


def make_producer(bootstrap, txn_id=None, **extra):
    """A transactional producer (`txn_id`), already initialised, or a plain one."""
    config = {"bootstrap.servers": bootstrap, "linger.ms": 5}
    if txn_id is not None:
        config["transactional.id"] = txn_id
    config.update(extra)
    p = Producer(config)
    if txn_id is not None:
        p.init_transactions(30)
    return p


def send(p, topic, values, partition=0):
    """Produces `values` (to `partition`, or to `partition(i)`) and waits until
    every one is acknowledged without error."""
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)

    for i, v in enumerate(values):
        p.produce(topic, value=v.encode(), partition=partition(i) if callable(partition) else partition,
                  on_delivery=report)
    assert p.flush(30) == 0, "records still queued"
    assert errors == [], errors


def transaction(p, topic, values, end, partition=0):
    """One transaction of `values`, flushed, then ended with `end`
    ("commit", "abort" or None: left open)."""
    p.begin_transaction()
    send(p, topic, values, partition)
    if end == "commit":
        p.commit_transaction(30)
    elif end == "abort":
        p.abort_transaction(30)


def reader(bootstrap, topic, isolation, partitions=1):
    """A confluent-kafka consumer on every partition of `topic` from offset 0."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": name("r"), "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "isolation.level": isolation})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    return c


def drain(c, count, timeout=20, settle=1.0):
    """(partition, offset, value) of what `c` delivers until `count` records
    or `timeout`, then for `settle` more seconds (so extra records show)."""
    out, deadline = [], time.time() + timeout
    while len(out) < count and time.time() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            out.append((m.partition(), m.offset(), m.value().decode() if m.value() is not None else None))
    end = time.time() + settle
    while time.time() < end:
        m = c.poll(0.2)
        if m is not None and not m.error():
            out.append((m.partition(), m.offset(), m.value().decode() if m.value() is not None else None))
    return out


def read_values(bootstrap, topic, isolation, count, timeout=20, settle=1.0, partitions=1):
    """What a fresh confluent-kafka consumer with `isolation` reads from offset 0."""
    c = reader(bootstrap, topic, isolation, partitions)
    try:
        return drain(c, count, timeout, settle)
    finally:
        c.close()


def kp_read_values(bootstrap, topic, isolation, count, timeout=20, settle=1.0):
    """The same with kafka-python, partition 0."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation, enable_auto_commit=False)
    tp = KpTopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    out = []

    def poll():
        for records in c.poll(timeout_ms=200).values():
            out.extend((r.partition, r.offset, r.value.decode() if r.value is not None else None) for r in records)

    try:
        deadline = time.time() + timeout
        while len(out) < count and time.time() < deadline:
            poll()
        end = time.time() + settle
        while time.time() < end:
            poll()
        return out
    finally:
        c.close()


def end_offsets(bootstrap, topic, partition=0):
    """(last stable offset, high watermark) of a partition: ListOffsets(latest)
    asked by a read_committed and by a read_uncommitted kafka-python consumer."""
    tp = KpTopicPartition(topic, partition)
    out = []
    for isolation in (COMMITTED, UNCOMMITTED):
        c = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation, enable_auto_commit=False)
        try:
            out.append(c.end_offsets([tp], timeout_ms=10000)[tp])
        finally:
            c.close()
    return tuple(out)


def wait_end_offsets(bootstrap, topic, until, timeout=20):
    """Polls `end_offsets` until `until(lso, hw)` or `timeout`; the last pair."""
    deadline = time.time() + timeout
    while True:
        lso, hw = end_offsets(bootstrap, topic)
        if until(lso, hw) or time.time() > deadline:
            return lso, hw
        time.sleep(0.5)


def values(records):
    return [v for _, _, v in records]


def offsets(records):
    return [o for _, o, _ in records]


def vals(prefix, n):
    return [f"{prefix}{i}" for i in range(n)]


# A transactional producer in its own process: runs transactions of 5 records
# each ("commit:PREFIX", "abort:PREFIX", "open:PREFIX" - the last flushed but
# left open), prints "ready" and waits to be killed.
TXN_PROCESS = textwrap.dedent("""
    import sys, time
    from confluent_kafka import Producer
    bootstrap, txn_id, topic, timeout_ms = sys.argv[1:5]
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id,
                  "transaction.timeout.ms": int(timeout_ms), "linger.ms": 5})
    p.init_transactions(30)
    errors = []
    for step in sys.argv[5:]:
        end, prefix = step.split(":")
        p.begin_transaction()
        for i in range(5):
            p.produce(topic, value=f"{prefix}{i}".encode(), partition=0,
                      on_delivery=lambda err, msg: errors.append(err) if err else None)
        assert p.flush(30) == 0 and not errors, errors
        if end == "commit":
            p.commit_transaction(30)
        elif end == "abort":
            p.abort_transaction(30)
    print("ready", flush=True)
    time.sleep(300)
""")


def start_txn_process(bootstrap, txn_id, topic, timeout_ms, *steps):
    proc = subprocess.Popen([sys.executable, "-c", TXN_PROCESS, bootstrap, txn_id, topic, str(timeout_ms), *steps],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 40)
    line = proc.stdout.readline() if ready else ""
    if line.strip() != "ready":
        proc.kill()
        proc.wait(10)
        pytest.fail(f"the transactional producer process did not get ready: {line!r} {proc.stderr.read()}")
    return proc


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def test_committed_transactions_over_two_partitions_are_read_in_order(broker):
    topic, txn_id = name("txn-commit"), name("tid")
    make_topic(broker.bootstrap, topic, 2)
    p = make_producer(broker.bootstrap, txn_id)
    for t in range(3):
        transaction(p, topic, vals(f"t{t}-", 10), "commit", partition=lambda i: i % 2)
    got = read_values(broker.bootstrap, topic, COMMITTED, 30, partitions=2)
    assert len(got) == 30, got
    for part in (0, 1):
        mine = [(o, v) for p_, o, v in got if p_ == part]
        assert [v for _, v in mine] == [f"t{t}-{i}" for t in range(3) for i in range(10) if i % 2 == part]
        # Each commit marker takes one offset after its transaction's 5 records.
        assert [o for o, _ in mine] == [*range(0, 5), *range(6, 11), *range(12, 17)]


def test_aborted_transaction_is_hidden_from_read_committed_only(broker):
    topic, txn_id = name("txn-abort"), name("tid")
    make_topic(broker.bootstrap, topic)
    p = make_producer(broker.bootstrap, txn_id)
    transaction(p, topic, vals("a", 10), "commit")
    transaction(p, topic, vals("b", 10), "abort")
    transaction(p, topic, vals("c", 10), "commit")
    # A: 0-9, commit marker 10; B: 11-20, abort marker 21; C: 22-31, commit marker 32.
    committed_offsets = [*range(0, 10), *range(22, 32)]
    all_offsets = [*range(0, 10), *range(11, 21), *range(22, 32)]

    got = read_values(broker.bootstrap, topic, COMMITTED, 20)
    assert values(got) == vals("a", 10) + vals("c", 10)
    assert offsets(got) == committed_offsets
    got = read_values(broker.bootstrap, topic, UNCOMMITTED, 30)
    assert values(got) == vals("a", 10) + vals("b", 10) + vals("c", 10)
    assert offsets(got) == all_offsets

    got = kp_read_values(broker.bootstrap, topic, COMMITTED, 20)
    assert values(got) == vals("a", 10) + vals("c", 10)
    assert offsets(got) == committed_offsets
    got = kp_read_values(broker.bootstrap, topic, UNCOMMITTED, 30)
    assert values(got) == vals("a", 10) + vals("b", 10) + vals("c", 10)
    assert offsets(got) == all_offsets
    # Nothing open: the last stable offset is the high watermark, past C's marker.
    assert wait_end_offsets(broker.bootstrap, topic, lambda lso, hw: lso == hw == 33, 10) == (33, 33)


def test_ongoing_transaction_holds_read_committed_back_until_commit(broker):
    topic, txn_id = name("txn-open"), name("tid")
    make_topic(broker.bootstrap, topic)
    p = make_producer(broker.bootstrap, txn_id)
    transaction(p, topic, vals("o", 5), None)
    committed, uncommitted = reader(broker.bootstrap, topic, COMMITTED), reader(broker.bootstrap, topic, UNCOMMITTED)
    try:
        assert values(drain(uncommitted, 5)) == vals("o", 5)
        assert drain(committed, 0, settle=3) == [], "read_committed saw an open transaction's records"
        # The last stable offset stays at the open transaction's first record.
        assert end_offsets(broker.bootstrap, topic) == (0, 5)
        p.commit_transaction(30)
        got = drain(committed, 5)
        assert values(got) == vals("o", 5)
        assert offsets(got) == list(range(5))
        # The commit marker at 5: both end offsets move past it.
        assert wait_end_offsets(broker.bootstrap, topic, lambda lso, hw: lso == hw == 6, 10) == (6, 6)
        assert drain(uncommitted, 0, settle=1) == [], "a control record was delivered"
    finally:
        committed.close()
        uncommitted.close()


FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


def test_second_producer_with_the_same_transactional_id_fences_the_first(broker):
    topic, txn_id = name("txn-fence"), name("tid")
    make_topic(broker.bootstrap, topic)
    p1 = make_producer(broker.bootstrap, txn_id)
    transaction(p1, topic, vals("zombie", 5), None)
    p2 = make_producer(broker.bootstrap, txn_id)  # aborts p1's transaction
    with pytest.raises(KafkaException) as raised:
        p1.commit_transaction(15)
    err = raised.value.args[0]
    assert err.fatal() or err.code() in FENCED, f"the zombie's commit failed with {err!r}, not a fence"
    transaction(p2, topic, vals("p2-", 5), "commit")
    got = read_values(broker.bootstrap, topic, COMMITTED, 5)
    assert values(got) == vals("p2-", 5)
    # p1's records 0-4, its abort marker at 5, p2's records 6-10.
    assert offsets(got) == list(range(6, 11))
    assert values(read_values(broker.bootstrap, topic, UNCOMMITTED, 10)) == vals("zombie", 5) + vals("p2-", 5)


def test_crashed_producers_transaction_is_aborted_by_its_timeout(broker):
    topic, txn_id = name("txn-crash"), name("tid")
    make_topic(broker.bootstrap, topic)
    proc = start_txn_process(broker.bootstrap, txn_id, topic, 5000, "open:zombie")
    kill(proc)
    killed = time.time()
    send(make_producer(broker.bootstrap), topic, vals("after", 3))
    # The open transaction holds read_committed back until the broker aborts
    # it (5 s after it began, plus the coordinator's check interval).
    got = read_values(broker.bootstrap, topic, COMMITTED, 3, timeout=30)
    assert values(got) == vals("after", 3), (
        f"read_committed after {time.time() - killed:.1f} s: {got}\n{broker.log()[-3000:]}")
    assert values(read_values(broker.bootstrap, topic, UNCOMMITTED, 8)) == vals("zombie", 5) + vals("after", 3)


def test_crashed_producers_transaction_is_aborted_by_its_successor(broker):
    topic, txn_id = name("txn-succ"), name("tid")
    make_topic(broker.bootstrap, topic)
    # A minute's timeout: only the successor's InitProducerId can end it within the test.
    proc = start_txn_process(broker.bootstrap, txn_id, topic, 60000, "open:zombie")
    kill(proc)
    p = make_producer(broker.bootstrap, txn_id)
    transaction(p, topic, vals("fresh", 3), "commit")
    got = read_values(broker.bootstrap, topic, COMMITTED, 3, timeout=10)
    assert values(got) == vals("fresh", 3)
    assert offsets(got) == [6, 7, 8]  # zombie 0-4, its abort marker 5


def test_consume_transform_produce_commits_offsets_with_the_transaction(broker):
    source, sink, group, txn_id = name("ctp-in"), name("ctp-out"), name("g"), name("tid")
    make_topic(broker.bootstrap, source)
    make_topic(broker.bootstrap, sink)
    send(make_producer(broker.bootstrap), source, vals("in", 20))
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "isolation.level": COMMITTED,
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    c.subscribe([source])
    p = make_producer(broker.bootstrap, txn_id)
    partition = TopicPartition(source, 0)

    def round_trip(end):
        read = drain(c, 10, timeout=30, settle=0)
        assert len(read) == 10, read
        p.begin_transaction()
        send(p, sink, [f"out-{v}" for v in values(read)])
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 15)
        if end == "commit":
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
        return values(read)

    try:
        assert round_trip("commit") == vals("in", 10)
        assert c.committed([partition], timeout=10)[0].offset == 10
        out = [f"out-in{i}" for i in range(10)]
        assert values(read_values(broker.bootstrap, sink, COMMITTED, 10)) == out

        assert round_trip("abort") == vals("in", 20)[10:]
        assert c.position([partition])[0].offset == 20
        assert c.committed([partition], timeout=10)[0].offset == 10, "an aborted transaction's offsets were committed"
        assert values(read_values(broker.bootstrap, sink, COMMITTED, 10, settle=2)) == out
        assert len(read_values(broker.bootstrap, sink, UNCOMMITTED, 20)) == 20
    finally:
        c.close()


def test_transactions_survive_a_broker_kill():
    # Its own broker, as this one is killed.
    b = Broker("transactionAbortTimedOutTransactionCleanupIntervalMs=1000\n").start()
    proc = None
    try:
        topic, txn_id = name("txn-kill"), name("tid")
        make_topic(b.bootstrap, topic)
        proc = start_txn_process(b.bootstrap, txn_id, topic, 5000, "commit:c", "abort:a", "open:o")
        b.stop(signal.SIGKILL)
        kill(proc)  # the producer dies too: only the broker can end its transaction
        b.start()
        restarted = time.time()
        got = read_values(b.bootstrap, topic, COMMITTED, 5, timeout=20, settle=2)
        assert values(got) == vals("c", 5), b.log()[-3000:]
        assert offsets(got) == list(range(5))
        # The open transaction (o: 12-16) is aborted by its timeout after the
        # restart: the last stable offset reaches the high watermark.
        lso, hw = wait_end_offsets(b.bootstrap, topic, lambda lso, hw: lso == hw and hw >= 18, 30)
        assert lso == hw and hw >= 18, (
            f"LSO {lso}, HW {hw} {time.time() - restarted:.1f} s after the restart\n{b.log()[-3000:]}")
        assert values(read_values(b.bootstrap, topic, UNCOMMITTED, 15)) == vals("c", 5) + vals("a", 5) + vals("o", 5)

        p = make_producer(b.bootstrap, txn_id)
        transaction(p, topic, vals("n", 2), "commit")
        got = read_values(b.bootstrap, topic, COMMITTED, 7)
        assert values(got) == vals("c", 5) + vals("n", 2)
        del p
        assert b.stop() == 0, b.log()[-3000:]
    finally:
        if proc is not None and proc.poll() is None:
            kill(proc)
        if b.proc is not None:
            b.stop(signal.SIGKILL)
        b.dir.cleanup()


def pulsar_receive(consumer, timeout):
    """The values a Pulsar consumer receives within `timeout` seconds (each acknowledged)."""
    import pulsar

    out, deadline = [], time.time() + timeout
    while time.time() < deadline:
        try:
            m = consumer.receive(timeout_millis=200)
        except pulsar.Timeout:
            continue
        out.append(m.data().decode())
        consumer.acknowledge(m)
    return out


def test_pulsar_consumers_get_committed_records_only(broker, pulsar_client):
    """A Pulsar consumer of a Kafka topic sees a transaction's records only
    once it commits, never an aborted one's nor the markers, and its backlog
    drains (the hidden entries are acknowledged for it)."""
    import pulsar
    import requests

    topic = name("txn-pulsar")
    make_topic(broker.bootstrap, topic)
    consumer = pulsar_client.subscribe(f"persistent://public/default/{topic}", "s",
                                       initial_position=pulsar.InitialPosition.Earliest)
    p = make_producer(broker.bootstrap, name("tx"))
    for tag, commit in (("a", True), ("b", False)):
        p.begin_transaction()
        send(p, topic, [f"{tag}{i}" for i in range(5)])
        p.commit_transaction(30) if commit else p.abort_transaction(30)
    p.begin_transaction()
    send(p, topic, [f"c{i}" for i in range(5)])
    # The open transaction holds everything from its first record on.
    assert pulsar_receive(consumer, 3) == [f"a{i}" for i in range(5)]
    p.commit_transaction(30)
    assert pulsar_receive(consumer, 3) == [f"c{i}" for i in range(5)]
    # CreateTopics made a partitioned topic of one partition.
    url = f"{broker.web_url}/admin/v2/persistent/public/default/{topic}/partitioned-stats"
    stats = requests.get(url, timeout=10).json()
    # 15 records and 3 markers stored; every one acknowledged or hidden.
    assert stats["msgInCounter"] == 18, stats
    assert stats["subscriptions"]["s"]["msgBacklog"] == 0, stats
    consumer.close()
