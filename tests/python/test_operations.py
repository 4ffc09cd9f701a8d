"""Operating the broker: `/metrics` (parsed with Prometheus' own text
parser) and the admin REST API's errors and policies, on the real binary
with real clients (confluent-kafka, pulsar-client, raw Kafka frames,
requests)."""

import socket
import struct
import time
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import Broker


@pytest.fixture(scope="module")
def broker():
    # Topic-level series, rates over 1 s, retention every second, 1 MB segments.
    b = Broker(
        extra="exposeTopicLevelMetricsInPrometheus=true\n"
        "statsUpdateFrequencyInSecs=1\n"
        "retentionCheckIntervalInSeconds=1\n"
        "managedLedgerMaxSizePerLedgerMbytes=1\n"
        "groupInitialRebalanceDelayMs=0\n"
    ).start()
    yield b
    code = b.stop()
    assert code == 0, b.log()
    b.dir.cleanup()


def scrape(broker):
    """{(name, frozenset(labels)): value} of every sample, and the families' types."""
    response = requests.get(broker.web_url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples, types = {}, {}
    for family in text_string_to_metric_families(response.text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


def value(samples, name, **labels):
    """The sample `name` whose labels include `labels` (summed over the others)."""
    want = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == name and want <= set(ls)]
    return sum(found) if found else None


def wait_for(check, timeout=15, interval=0.3):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    return last


def kafka_frame(api_key, version, correlation, body=b"", client=b"raw"):
    header = struct.pack(">hhih", api_key, version, correlation, len(client)) + client
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def read_response(sock):
    size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
    return sock.recv(size, socket.MSG_WAITALL)


def test_kafka_traffic_backlog_and_lag_are_counted(broker):
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic, group = f"metrics-{uuid.uuid4().hex[:6]}", f"g-{uuid.uuid4().hex[:6]}"
    full = f"persistent://public/default/{topic}"
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    values = [f"value-{i:03d}".encode() for i in range(20)]
    for v in values:
        p.produce(topic, v)
        p.flush(10)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.time() + 20
    while len(got) < 20 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m)
    assert len(got) == 20
    c.commit(offsets=[TopicPartition(topic, 0, 15)], asynchronous=False)

    def settled():
        samples, _ = scrape(broker)
        lag = value(samples, "kop_server_CONSUMER_LAG", group=group, topic=topic, partition="0")
        backlog = value(samples, "pulsar_subscription_back_log", topic=full, subscription=group)
        return (samples, lag, backlog) if lag == 5 and backlog == 5 else None

    result = wait_for(settled)
    assert result, f"lag and backlog did not reach 5: {scrape(broker)[0]}"
    samples, _, _ = result
    c.close()

    # The host's counters and the handler's agree with what was sent and read.
    assert value(samples, "pulsar_in_messages_total", topic=full) == 20
    assert value(samples, "pulsar_out_messages_total", topic=full) == 20
    assert value(samples, "kop_server_MESSAGE_IN_total", topic=topic, partition="0") == 20
    assert value(samples, "kop_server_MESSAGE_OUT_total", topic=topic, partition="0") == 20
    bytes_in = value(samples, "pulsar_in_bytes_total", topic=full)
    assert bytes_in == value(samples, "kop_server_BYTES_IN_total", topic=topic)
    assert bytes_in > sum(len(v) for v in values)  # record batches: headers and values
    assert value(samples, "pulsar_out_bytes_total", topic=full) == bytes_in
    assert value(samples, "pulsar_msg_backlog", topic=full) == 5
    assert value(samples, "pulsar_subscriptions_count", topic=full) == 1
    assert value(samples, "pulsar_storage_size", topic=full) >= bytes_in
    assert value(samples, "kop_server_GROUPS") >= 1
    assert value(samples, "pulsar_storage_write_latency_seconds_count") >= 20
    assert value(samples, "pulsar_storage_read_latency_seconds_count") >= 1
    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "process_start_time_seconds") > 0
    assert value(samples, "process_open_fds") > 0

    # Rates cover the last second: once sampled after the traffic, they fall back to 0.
    assert wait_for(lambda: value(scrape(broker)[0], "pulsar_rate_in", topic=full) == 0)


def test_request_counters_count_each_request(broker):
    before, types = scrape(broker)
    assert types["kop_server_REQUESTS"] == "counter"
    assert types["kop_server_REQUEST_LATENCY"] == "histogram"
    count = lambda s: value(s, "kop_server_REQUESTS_total", request="ApiVersions", version="0") or 0
    latency = lambda s: value(s, "kop_server_REQUEST_LATENCY_count", request="ApiVersions") or 0
    errors = lambda s, r: value(s, "kop_server_REQUEST_ERRORS_total", request=r, error="UNSUPPORTED_VERSION") or 0
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        for i in range(5):
            s.sendall(kafka_frame(18, 0, i))
            assert struct.unpack(">i", read_response(s)[:4])[0] == i
        s.sendall(kafka_frame(3, 99, 7))  # Metadata v99
        read_response(s)
        s.sendall(kafka_frame(999, 0, 8))  # no such API
        read_response(s)
        during, _ = scrape(broker)
        assert value(during, "kop_server_ALIVE_CHANNEL_COUNT") >= 1
    after, _ = scrape(broker)
    assert count(after) - count(before) == 5
    assert latency(after) - latency(before) == 5
    assert errors(after, "Metadata") - errors(before, "Metadata") == 1
    assert errors(after, "unknown") - errors(before, "unknown") == 1
    assert all(("version", "99") in ls for (n, ls) in after
               if n == "kop_server_REQUEST_ERRORS_total" and ("request", "Metadata") in ls)
    # A client's made-up API key never becomes a label value.
    assert not any(("request", "999") in ls or ("request", "api-999") in ls for (_, ls) in after)


def test_partition_errors_are_counted_by_name(broker):
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = f"oor-{uuid.uuid4().hex[:6]}"
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(topic, b"only")
    p.flush(10)
    errors = lambda s: value(s, "kop_server_REQUEST_ERRORS_total", request="Fetch", error="OFFSET_OUT_OF_RANGE") or 0
    before = errors(scrape(broker)[0])
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "oor", "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 1000)])  # past the end: the broker answers OFFSET_OUT_OF_RANGE
    got = None
    deadline = time.time() + 15
    while got is None and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got = m
    c.close()
    assert got is not None and got.value() == b"only"  # the client reset to the earliest offset
    assert errors(scrape(broker)[0]) - before >= 1


def test_pulsar_producers_and_consumers_are_counted(broker, pulsar_client):
    topic = f"persistent://public/default/pc-{uuid.uuid4().hex[:6]}"
    producer = pulsar_client.create_producer(topic, batching_enabled=False)
    consumer = pulsar_client.subscribe(topic, "sub")
    for i in range(3):
        producer.send(f"m{i}".encode())
    for _ in range(3):
        consumer.acknowledge(consumer.receive(timeout_millis=10000))
    samples, _ = scrape(broker)
    assert value(samples, "pulsar_producers_count", topic=topic) == 1
    assert value(samples, "pulsar_consumers_count", topic=topic) == 1
    assert value(samples, "pulsar_in_messages_total", topic=topic) == 3
    assert value(samples, "pulsar_out_messages_total", topic=topic) == 3
    producer.close()
    consumer.close()
    assert wait_for(lambda: (lambda s: value(s, "pulsar_producers_count", topic=topic) == 0
                             and value(s, "pulsar_consumers_count", topic=topic) == 0)(scrape(broker)[0]))


def test_namespace_level_series_by_default():
    b = Broker().start()
    try:
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": b.bootstrap})
        p.produce("ns-level", b"x")
        p.flush(10)
        samples, _ = scrape(b)
        assert value(samples, "pulsar_in_messages_total", namespace="public/default") >= 1
        assert value(samples, "pulsar_topics_count", namespace="public/default") >= 1
        pulsar_series = [ls for (n, ls) in samples if n.startswith("pulsar_") and "latency" not in n]
        assert pulsar_series and not any(k == "topic" for ls in pulsar_series for (k, _) in ls)
        assert not any(k in ("topic", "partition") for (n, ls) in samples if n.startswith("kop_server_BYTES")
                       for (k, _) in ls)
    finally:
        assert b.stop() == 0, b.log()
        b.dir.cleanup()


def admin(broker, method, path, **kwargs):
    return requests.request(method, broker.web_url + path, timeout=10, **kwargs)


def reason(response):
    body = response.json()
    assert isinstance(body.get("reason"), str) and body["reason"], body
    return body["reason"]


def test_admin_errors_have_pulsars_codes_and_reasons(broker):
    ns = f"errs{uuid.uuid4().hex[:6]}"
    assert admin(broker, "PUT", "/admin/v2/tenants/ops", json={"allowedClusters": ["standalone"]}).status_code in (204, 409)
    assert admin(broker, "PUT", f"/admin/v2/namespaces/ops/{ns}").status_code == 204
    r = admin(broker, "PUT", f"/admin/v2/namespaces/ops/{ns}")
    assert r.status_code == 409 and "already exists" in reason(r)
    r = admin(broker, "PUT", "/admin/v2/namespaces/no-such-tenant/x")
    assert r.status_code == 404 and "no-such-tenant" in reason(r)

    topic = f"/admin/v2/persistent/ops/{ns}/t1"
    assert admin(broker, "PUT", topic).status_code == 204
    r = admin(broker, "PUT", topic)
    assert r.status_code == 409 and "already exists" in reason(r)
    r = admin(broker, "GET", f"/admin/v2/persistent/ops/{ns}/missing/stats")
    assert r.status_code == 404 and "missing" in reason(r)
    r = admin(broker, "DELETE", f"/admin/v2/persistent/ops/{ns}/missing")
    assert r.status_code == 404
    r = admin(broker, "POST", f"{topic}/partitions", data="4", headers={"content-type": "application/json"})
    assert r.status_code == 412 and "not partitioned" in reason(r)
    r = admin(broker, "PUT", f"/admin/v2/persistent/ops/{ns}/p/partitions", data="zero",
              headers={"content-type": "application/json"})
    assert r.status_code == 400 and "partitions" in reason(r)
    r = admin(broker, "DELETE", f"{topic}/subscription/nope")
    assert r.status_code == 404 and "nope" in reason(r)
    r = admin(broker, "GET", f"{topic}/examinemessage?initialPosition=earliest&messagePosition=1")
    assert r.status_code == 404 and "empty" in reason(r)

    r = admin(broker, "POST", f"/admin/v2/namespaces/ops/{ns}/retention",
              json={"retentionTimeInMinutes": -5, "retentionSizeInMB": 1})
    assert r.status_code == 412
    r = admin(broker, "POST", f"/admin/v2/namespaces/ops/{ns}/retention", data="{not json",
              headers={"content-type": "application/json"})
    assert r.status_code == 400 and "RetentionPolicies" in reason(r)
    r = admin(broker, "POST", f"/admin/v2/namespaces/ops/{ns}/messageTTL", json=-1)
    assert r.status_code == 412
    r = admin(broker, "POST", f"/admin/v2/namespaces/ops/{ns}/autoTopicCreation",
              json={"allowAutoTopicCreation": True, "topicType": "partitioned"})
    assert r.status_code == 412 and "defaultNumPartitions" in reason(r)
    r = admin(broker, "GET", "/admin/v2/clusters/elsewhere")
    assert r.status_code == 404 and "elsewhere" in reason(r)

    r = admin(broker, "DELETE", f"/admin/v2/namespaces/ops/{ns}")
    assert r.status_code == 409 and "non empty" in reason(r)
    r = admin(broker, "DELETE", "/admin/v2/tenants/ops")
    assert r.status_code == 409 and "namespaces" in reason(r)
    assert admin(broker, "DELETE", topic).status_code == 204
    assert admin(broker, "DELETE", f"/admin/v2/namespaces/ops/{ns}").status_code == 204


def test_auto_topic_creation_override_applies(broker):
    ns = f"auto{uuid.uuid4().hex[:6]}"
    admin(broker, "PUT", "/admin/v2/tenants/ops", json={"allowedClusters": ["standalone"]})
    assert admin(broker, "PUT", f"/admin/v2/namespaces/ops/{ns}").status_code == 204
    r = admin(broker, "POST", f"/admin/v2/namespaces/ops/{ns}/autoTopicCreation",
              json={"allowAutoTopicCreation": True, "topicType": "partitioned", "defaultNumPartitions": 3})
    assert r.status_code == 204
    # A lookup creates the topic as the namespace's rules say.
    r = admin(broker, "GET", f"/lookup/v2/topic/persistent/ops/{ns}/auto1")
    assert r.status_code == 200 and r.json()["brokerUrl"] == broker.pulsar_url
    assert admin(broker, "GET", f"/admin/v2/persistent/ops/{ns}/auto1/partitions").json() == {"partitions": 3}
    r = admin(broker, "POST", f"/admin/v2/namespaces/ops/{ns}/autoTopicCreation",
              json={"allowAutoTopicCreation": False, "topicType": "non-partitioned"})
    assert r.status_code == 204
    r = admin(broker, "GET", f"/lookup/v2/topic/persistent/ops/{ns}/auto2")
    assert r.status_code == 404


def test_ttl_and_retention_set_over_rest_apply_to_data(broker, pulsar_client):
    ns = f"ttl{uuid.uuid4().hex[:6]}"
    admin(broker, "PUT", "/admin/v2/tenants/ops", json={"allowedClusters": ["standalone"]})
    assert admin(broker, "PUT", f"/admin/v2/namespaces/ops/{ns}").status_code == 204
    base = f"/admin/v2/persistent/ops/{ns}/data"
    assert admin(broker, "PUT", base).status_code == 204
    earliest = {"ledgerId": -1, "entryId": -1, "partitionIndex": -1}
    assert admin(broker, "PUT", f"{base}/subscription/s", json=earliest).status_code == 204
    producer = pulsar_client.create_producer(f"persistent://ops/{ns}/data", batching_enabled=False)
    payload = b"x" * 100_000
    for _ in range(30):  # about 3 MB: the 1 MB segments roll
        producer.send(payload)
    producer.close()
    internal = admin(broker, "GET", f"{base}/internalStats").json()
    segments = len(internal["ledgers"])
    assert segments >= 3, internal
    backlog = lambda: admin(broker, "GET", f"{base}/stats").json()["subscriptions"]["s"]["msgBacklog"]
    assert backlog() == 30

    # TTL over REST: every sealed segment's messages expire; the active one's stay.
    assert admin(broker, "POST", f"/admin/v2/namespaces/ops/{ns}/messageTTL", json=1).status_code == 204
    assert admin(broker, "GET", f"/admin/v2/namespaces/ops/{ns}/messageTTL").json() == 1
    active = internal["ledgers"][-1]["entries"]
    assert wait_for(lambda: backlog() == active), f"backlog {backlog()}, active segment {active}"
    time.sleep(2)  # retention's default (7 days) keeps the consumed segments
    assert len(admin(broker, "GET", f"{base}/internalStats").json()["ledgers"]) == segments

    # Retention over REST: consumed segments go once nothing requires them.
    r = admin(broker, "POST", f"/admin/v2/namespaces/ops/{ns}/retention",
              json={"retentionTimeInMinutes": 0, "retentionSizeInMB": 0})
    assert r.status_code == 204
    policies = admin(broker, "GET", f"/admin/v2/namespaces/ops/{ns}").json()
    assert policies["retention_policies"] == {"retentionTimeInMinutes": 0, "retentionSizeInMB": 0}
    assert policies["message_ttl_in_seconds"] == 1
    assert wait_for(lambda: len(admin(broker, "GET", f"{base}/internalStats").json()["ledgers"]) == 1)
    stats = admin(broker, "GET", f"{base}/stats").json()
    assert stats["storageSize"] < 1_100_000
    assert stats["subscriptions"]["s"]["msgBacklog"] == active
