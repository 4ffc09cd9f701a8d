"""Consumer groups with real clients against the real broker: confluent-kafka
(librdkafka) and kafka-python members joining and leaving one group, a member
killed without leaving, a broker restart, cooperative-sticky and static
members, and the admin views (describe, list, offsets, delete).

Messages are counted as consumed only once their offset commit succeeded, so
a broker that accepted a commit from a fenced member, or handed a partition
to two members at once, shows up as a duplicate."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient
from kafka.errors import CommitFailedError

from conftest import Broker

PARTITIONS = 4


@pytest.fixture(scope="module")
def broker():
    # Kafka test clusters run without the initial rebalance delay; sessions
    # may be as short as 6 s (Kafka's minimum).
    b = Broker("groupInitialRebalanceDelayMs=0\n").start()
    yield b
    assert b.stop() == 0, b.log()


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_topic(bootstrap, topic, messages):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(15)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(messages):
        p.produce(topic, value=f"m{i}".encode(), partition=i % PARTITIONS)
    assert p.flush(30) == 0
    return {(i % PARTITIONS, i // PARTITIONS) for i in range(messages)}


def confluent(bootstrap, group, **extra):
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    }
    config.update(extra)
    return Consumer(config)


def poll_commit(consumer, seen, owner):
    """Polls once; records the message only if its commit succeeds."""
    m = consumer.poll(0.1)
    if m is None or m.error():
        return
    try:
        consumer.commit(message=m, asynchronous=False)
    except KafkaException:
        return  # fenced or rebalancing: the next owner gets it again
    key = (m.partition(), m.offset())
    assert key not in seen, f"{key} consumed twice ({seen[key]} and {owner})"
    seen[key] = owner


def drive(consumers, seen, until, timeout=60):
    deadline = time.time() + timeout
    while len(seen) < until and time.time() < deadline:
        for owner, c in consumers.items():
            poll_commit(c, seen, owner)
    return len(seen) >= until


def test_confluent_members_join_and_leave_and_each_message_is_consumed_once(broker):
    topic, group = name("grp"), name("g")
    expected = make_topic(broker.bootstrap, topic, 400)
    seen = {}
    members = {"a": confluent(broker.bootstrap, group), "b": confluent(broker.bootstrap, group)}
    for c in members.values():
        c.subscribe([topic])
    assert drive(members, seen, 120), f"only {len(seen)} consumed"
    members["c"] = confluent(broker.bootstrap, group)
    members["c"].subscribe([topic])
    assert drive(members, seen, 250), f"only {len(seen)} consumed"
    members.pop("a").close()  # LeaveGroup: b and c take over its partitions
    assert drive(members, seen, 400), f"only {len(seen)} of 400 consumed"
    assert set(seen) == expected
    assert len({owner for owner in seen.values()}) >= 2, "the work was shared"
    for c in members.values():
        c.close()


def test_kafka_python_members_share_a_group_and_take_over_on_leave(broker):
    topic, group = name("grp-kp"), name("g-kp")
    expected = make_topic(broker.bootstrap, topic, 200)
    seen = {}

    def member():
        c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False,
                          auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=500)
        c.subscribe([topic])
        return c

    def step(c, owner):
        for tp, records in c.poll(timeout_ms=100, max_records=5).items():
            for r in records:
                try:
                    from kafka.structs import OffsetAndMetadata
                    c.commit({tp: OffsetAndMetadata(r.offset + 1, "", -1)})
                except CommitFailedError:
                    return
                key = (tp.partition, r.offset)
                assert key not in seen, f"{key} consumed twice"
                seen[key] = owner

    a, b = member(), member()
    deadline = time.time() + 60
    while len(seen) < 100 and time.time() < deadline:
        step(a, "a")
        step(b, "b")
    assert len(seen) >= 100, f"only {len(seen)} consumed"
    a.close()  # leaves the group
    while len(seen) < 200 and time.time() < deadline:
        step(b, "b")
    assert set(seen) == expected
    assert len(b.assignment()) == PARTITIONS, "b took over every partition"
    b.close()


MEMBER = textwrap.dedent("""
    import sys, time
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "enable.auto.commit": False})
    c.subscribe([sys.argv[3]])
    while True:
        c.poll(0.2)
        if c.assignment():
            print("assigned", flush=True)
""")


def assignment_of(consumer, want, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        consumer.poll(0.2)
        if len(consumer.assignment()) == want:
            return True
    return False


def test_a_member_killed_without_leaving_is_removed_after_its_session_timeout(broker):
    topic, group = name("grp-kill"), name("g-kill")
    make_topic(broker.bootstrap, topic, 8)
    survivor = confluent(broker.bootstrap, group)
    survivor.subscribe([topic])
    assert assignment_of(survivor, PARTITIONS, 20)
    victim = subprocess.Popen([sys.executable, "-c", MEMBER, broker.bootstrap, group, topic],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        # The survivor must keep polling: an eager rebalance waits for it to rejoin.
        lines = []
        reader = threading.Thread(target=lambda: lines.append(victim.stdout.readline().strip()), daemon=True)
        reader.start()
        assert assignment_of(survivor, PARTITIONS // 2, 20), "the partitions were shared"
        reader.join(10)
        assert lines == ["assigned"]
        victim.send_signal(signal.SIGKILL)  # no LeaveGroup
        victim.wait(10)
        killed_at = time.time()
        assert assignment_of(survivor, PARTITIONS, 30), "the dead member's partitions came back"
        elapsed = time.time() - killed_at
        assert elapsed >= 3, f"reassigned after {elapsed:.1f}s: before the session could expire?"
    finally:
        victim.kill()
        survivor.close()


def test_group_resumes_from_committed_offsets_after_a_broker_restart(tmp_path):
    b = Broker("groupInitialRebalanceDelayMs=0\n").start()
    try:
        topic, group = name("grp-restart"), name("g-restart")
        make_topic(b.bootstrap, topic, 40)
        seen = {}
        c = confluent(b.bootstrap, group)
        c.subscribe([topic])
        assert drive({"first": c}, seen, 20)
        c.close()
        assert b.stop(signal.SIGKILL) == -signal.SIGKILL  # acknowledged commits survive kill -9
        b.start()
        c = confluent(b.bootstrap, group)
        c.subscribe([topic])
        assert drive({"second": c}, seen, 40), f"only {len(seen)} consumed: the group did not resume"
        assert sum(1 for o in seen.values() if o == "second") == 20, "resumed exactly after the commits"
        c.close()
    finally:
        b.stop()


def test_cooperative_sticky_members_move_only_some_partitions(broker):
    topic, group = name("grp-coop"), name("g-coop")
    make_topic(broker.bootstrap, topic, 8)
    revoked = []
    first = confluent(broker.bootstrap, group, **{"partition.assignment.strategy": "cooperative-sticky"})
    first.subscribe([topic], on_revoke=lambda c, parts: revoked.extend(parts))
    assert assignment_of(first, PARTITIONS, 20)
    second = confluent(broker.bootstrap, group, **{"partition.assignment.strategy": "cooperative-sticky"})
    second.subscribe([topic])
    deadline = time.time() + 30
    while time.time() < deadline and not (len(first.assignment()) == 2 and len(second.assignment()) == 2):
        first.poll(0.1)
        second.poll(0.1)
    assert (len(first.assignment()), len(second.assignment())) == (2, 2)
    assert 0 < len(revoked) < PARTITIONS, f"incremental: only the moved partitions were revoked, got {revoked}"
    first.close()
    second.close()


def test_a_static_member_rejoins_without_a_rebalance(broker):
    topic, group = name("grp-static"), name("g-static")
    make_topic(broker.bootstrap, topic, 8)
    other_events = []
    other = confluent(broker.bootstrap, group, **{"group.instance.id": "other"})
    other.subscribe([topic], on_assign=lambda c, p: other_events.append("assign"),
                    on_revoke=lambda c, p: other_events.append("revoke"))
    static = confluent(broker.bootstrap, group, **{"group.instance.id": "static-1"})
    static.subscribe([topic])
    deadline = time.time() + 30
    while time.time() < deadline and not (other.assignment() and static.assignment()):
        other.poll(0.1)
        static.poll(0.1)
    before = sorted(p.partition for p in static.assignment())
    assert before and len(before) < PARTITIONS
    settled = list(other_events)
    static.close()  # a static member does not leave the group on close
    again = confluent(broker.bootstrap, group, **{"group.instance.id": "static-1"})
    again.subscribe([topic])
    deadline = time.time() + 20
    while time.time() < deadline and len(again.assignment()) != len(before):
        again.poll(0.1)
        other.poll(0.1)
    assert sorted(p.partition for p in again.assignment()) == before, "same partitions back"
    for _ in range(20):
        other.poll(0.1)
    assert other_events == settled, f"the other member saw no rebalance: {other_events[len(settled):]}"
    other.close()
    again.close()


def test_admin_describes_lists_and_deletes_groups_with_offsets_and_lag(broker):
    topic, group = name("grp-admin"), name("g-admin")
    make_topic(broker.bootstrap, topic, 40)
    c = confluent(broker.bootstrap, group, **{"client.id": "admin-test-client"})
    c.subscribe([topic])
    seen = {}
    assert drive({"c": c}, seen, 10)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})

    listed = admin.list_consumer_groups().result(15)
    ours = [g for g in listed.valid if g.group_id == group]
    assert len(ours) == 1 and ours[0].state.name == "STABLE", listed.valid
    described = admin.describe_consumer_groups([group])[group].result(15)
    assert described.state.name == "STABLE"
    assert described.partition_assignor == "range"
    assert [m.client_id for m in described.members] == ["admin-test-client"]
    assigned = {tp.partition for tp in described.members[0].assignment.topic_partitions}
    assert assigned == set(range(PARTITIONS))
    from confluent_kafka import ConsumerGroupTopicPartitions
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(15)
    committed = {tp.partition: tp.offset for tp in offsets.topic_partitions if tp.topic == topic}
    assert sum(committed.values()) == len(seen) == 10
    lag = sum(10 - committed.get(p, 0) for p in range(PARTITIONS))
    assert lag == 40 - sum(committed.values())

    # kafka-python sees the same group.
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    assert {"group_id": group, "protocol_type": "consumer", "group_state": "Stable", "group_type": "classic"} in kp.list_groups()
    kp_desc = kp.describe_groups([group])[group]
    assert (kp_desc["group_state"], kp_desc["protocol_data"]) == ("Stable", "range")
    [member] = kp_desc["members"]
    assert (member["client_id"], member["client_host"]) == ("admin-test-client", "/127.0.0.1")
    assert member["member_metadata"]["topics"] == [topic]
    assert sorted(member["member_assignment"]["assigned_partitions"][0]["partitions"]) == list(range(PARTITIONS))
    kp_offsets = kp.list_group_offsets(group)[group]
    assert {tp.partition: om.offset for tp, om in kp_offsets.items()} == committed

    # A group with members cannot be deleted; once empty it can.
    result = admin.delete_consumer_groups([group])[group]
    with pytest.raises(KafkaException, match="NON_EMPTY_GROUP"):
        result.result(15)
    c.close()
    admin.delete_consumer_groups([group])[group].result(15)
    assert group not in [g.group_id for g in admin.list_consumer_groups().result(15).valid]
    kp.close()


def test_offset_delete_spares_subscribed_topics_and_alter_offsets_commits(broker):
    from kafka import TopicPartition as KpTopicPartition
    from kafka.errors import GroupSubscribedToTopicError, NoError
    from kafka.structs import OffsetAndMetadata

    topic, other, group = name("grp-od"), name("grp-od-other"), name("g-od")
    make_topic(broker.bootstrap, topic, 8)
    make_topic(broker.bootstrap, other, 4)
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    # AlterConsumerGroupOffsets (OffsetCommit) on a group without members.
    kp.alter_group_offsets(group, {KpTopicPartition(topic, 0): OffsetAndMetadata(1, "m", -1),
                                   KpTopicPartition(other, 0): OffsetAndMetadata(2, "", -1)})
    member = confluent(broker.bootstrap, group)
    member.subscribe([topic])
    assert assignment_of(member, PARTITIONS, 20)
    result = kp.delete_group_offsets(group, [KpTopicPartition(topic, 0), KpTopicPartition(other, 0)])
    assert result[KpTopicPartition(topic, 0)] is GroupSubscribedToTopicError, result
    assert result[KpTopicPartition(other, 0)] is NoError, result
    left = kp.list_group_offsets(group)[group]
    assert {(tp.topic, om.offset) for tp, om in left.items()} == {(topic, 1)}
    member.close()
    kp.close()
