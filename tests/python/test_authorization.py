"""Authorization and tenant isolation on the real broker (issue 16):
Pulsar's model (super-users, tenant admins, namespace and topic grants)
managed through the admin REST API as `pulsar-admin` calls it, and
enforced on Kafka clients (confluent-kafka, kafka-python) and Pulsar's
Python client. A role of tenant A must not list, describe, read, write,
delete or join groups of tenant B's topics, and each attempt gets the
protocol's authorization error."""

import json
import time
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import Broker, free_port
from test_security import Secrets

A_TOPIC = "tenant-a/ns/orders"
B_TOPIC = "tenant-b/ns/payroll"


@pytest.fixture(scope="module")
def secrets():
    s = Secrets()
    s.roles = {role: s.token(role) for role in ("admin", "a-admin", "b-admin", "alice", "bob", "nobody", "dave")}
    yield s
    s.tmp.cleanup()


def rest(broker, method, path, role=None, token=None, body=None):
    """(status, parsed body) of an admin REST call."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(broker.web_url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token or role:
        request.add_header("Authorization", f"Bearer {token or broker.secrets.roles[role]}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


@pytest.fixture(scope="module")
def broker(secrets):
    b = Broker(
        listeners="SASL_PLAINTEXT://127.0.0.1:{port}",
        extra="\n".join([
            "authenticationEnabled=true",
            "authenticationProviders=token",
            f"tokenSecretKey=file://{secrets.secret}",
            "authorizationEnabled=true",
            "superUserRoles=admin",
            "saslAllowedMechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        ]),
    )
    b.secrets = secrets
    b.start()
    # The operator's steps, as docs/security.md gives them.
    for tenant, admin in (("tenant-a", "a-admin"), ("tenant-b", "b-admin")):
        assert rest(b, "PUT", f"/admin/v2/tenants/{tenant}", "admin",
                    body={"adminRoles": [admin], "allowedClusters": ["standalone"]})[0] == 204
        assert rest(b, "PUT", f"/admin/v2/namespaces/{tenant}/ns", admin)[0] == 204
    assert rest(b, "POST", "/admin/v2/namespaces/tenant-a/ns/permissions/alice", "a-admin",
                body=["produce", "consume"])[0] == 204
    assert rest(b, "POST", "/admin/v2/namespaces/tenant-b/ns/permissions/bob", "b-admin",
                body=["produce", "consume"])[0] == 204
    yield b
    code = b.stop()
    assert code == 0, b.log()
    b.dir.cleanup()


def test_the_admin_api_answers_as_pulsar_does(broker):
    assert rest(broker, "GET", "/admin/v2/namespaces/tenant-a/ns/permissions", "a-admin") == \
        (200, {"alice": ["consume", "produce"]})
    status, body = rest(broker, "GET", "/admin/v2/tenants/tenant-a", "a-admin")
    assert status == 200 and body["adminRoles"] == ["a-admin"]
    assert set(rest(broker, "GET", "/admin/v2/tenants", "admin")[1]) >= {"tenant-a", "tenant-b", "public"}
    # No token, a bad token, a role that may not: 401, 401, 403, with a reason.
    status, body = rest(broker, "GET", "/admin/v2/tenants")
    assert status == 401 and "Bearer" in body["reason"]
    assert rest(broker, "GET", "/admin/v2/tenants", token=broker.secrets.foreign)[0] == 401
    status, body = rest(broker, "PUT", "/admin/v2/tenants/evil", "alice", body={"adminRoles": ["alice"]})
    assert status == 403 and "alice" in body["reason"]
    assert rest(broker, "POST", "/admin/v2/namespaces/tenant-a/ns/permissions/bob", "b-admin",
                body=["consume"])[0] == 403
    assert rest(broker, "GET", "/admin/v2/namespaces/tenant-a/ns/permissions", "alice")[0] == 403
    # Existing, missing, malformed.
    assert rest(broker, "PUT", "/admin/v2/tenants/tenant-a", "admin", body={"adminRoles": []})[0] == 409
    assert rest(broker, "PUT", "/admin/v2/namespaces/tenant-a/ns", "a-admin")[0] == 409
    assert rest(broker, "POST", "/admin/v2/namespaces/tenant-a/nope/permissions/x", "a-admin",
                body=["produce"])[0] == 404
    status, body = rest(broker, "POST", "/admin/v2/namespaces/tenant-a/ns/permissions/x", "a-admin",
                        body=["fly"])
    assert status == 412 and "fly" in body["reason"]


def test_health_and_readiness(broker):
    """Pulsar's probes: ready at once; health appends a heartbeat and reads
    it back, for super-users only when authorization is on."""
    with urllib.request.urlopen(broker.web_url + "/admin/v2/brokers/ready", timeout=10) as response:
        assert (response.status, response.read()) == (200, b"ok")
    request = urllib.request.Request(broker.web_url + "/admin/v2/brokers/health",
                                     headers={"Authorization": f"Bearer {broker.secrets.roles['admin']}"})
    with urllib.request.urlopen(request, timeout=15) as response:
        assert (response.status, response.read()) == (200, b"ok")
    assert rest(broker, "GET", "/admin/v2/brokers/health", "alice")[0] == 403
    assert rest(broker, "GET", "/admin/v2/brokers/health")[0] == 401


def pulsar_client(broker, role):
    import pulsar

    return pulsar.Client(broker.pulsar_url, authentication=pulsar.AuthenticationToken(broker.secrets.roles[role]),
                         operation_timeout_seconds=5, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))


def test_pulsar_roles_reach_their_tenant_only(broker):
    import pulsar

    alice = pulsar_client(broker, "alice")
    try:
        topic = f"persistent://{A_TOPIC}-pulsar"
        consumer = alice.subscribe(topic, "s", initial_position=pulsar.InitialPosition.Earliest)
        alice.create_producer(topic).send(b"mine")
        assert consumer.receive(10000).data() == b"mine"
        for attempt in (lambda: alice.create_producer(f"persistent://{B_TOPIC}"),
                        lambda: alice.subscribe(f"persistent://{B_TOPIC}", "s")):
            with pytest.raises(Exception):
                attempt()
    finally:
        alice.close()
    assert f"role alice is not authorized to look up persistent://{B_TOPIC}" in broker.log()


def test_a_grant_on_one_topic_and_its_revocation(broker):
    import pulsar

    topic = "tenant-b/ns/shared"
    assert rest(broker, "POST", f"/admin/v2/persistent/{topic}/permissions/alice", "b-admin",
                body=["consume"])[0] == 204
    status, perms = rest(broker, "GET", f"/admin/v2/persistent/{topic}/permissions", "b-admin")
    assert status == 200 and perms["alice"] == ["consume"] and perms["bob"] == ["consume", "produce"]
    alice = pulsar_client(broker, "alice")
    try:
        alice.subscribe(f"persistent://{topic}", "s").close()
        with pytest.raises(Exception):
            alice.create_producer(f"persistent://{topic}")
    finally:
        alice.close()
    assert rest(broker, "DELETE", f"/admin/v2/persistent/{topic}/permissions/alice", "b-admin")[0] == 204
    alice = pulsar_client(broker, "alice")
    try:
        with pytest.raises(Exception):
            alice.subscribe(f"persistent://{topic}", "s2")
    finally:
        alice.close()


def kafka_conf(broker, role, username):
    return {
        "bootstrap.servers": broker.bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": username,
        "sasl.password": f"token:{broker.secrets.roles[role]}",
    }


def test_kafka_roles_reach_their_tenant_only(broker):
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    alice = kafka_conf(broker, "alice", "tenant-a/ns")
    # Writes: its own tenant's topic is created and written; tenant B's is refused.
    p = Producer({**alice, "message.timeout.ms": 10000})
    delivered = {}
    p.produce(A_TOPIC, b"a1", on_delivery=lambda e, m: delivered.setdefault(m.topic(), e))
    p.produce(B_TOPIC, b"x", on_delivery=lambda e, m: delivered.setdefault(m.topic(), e))
    p.flush(20)
    assert delivered[A_TOPIC] is None, delivered
    assert delivered[B_TOPIC].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, delivered

    # Reads of tenant B's topic: an authorization error, no records.
    c = Consumer({**alice, "group.id": "alice-group", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([B_TOPIC])
    errors, deadline = [], time.time() + 10
    while not errors and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None:
            assert m.error(), f"alice read {m.value()} from {B_TOPIC}"
            errors.append(m.error())
    c.close()
    assert errors and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors

    admin = AdminClient(alice)
    # Metadata: tenant B's topic is an authorization error, and not created.
    md = admin.list_topics(B_TOPIC + "-new", timeout=10)
    assert md.topics[B_TOPIC + "-new"].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Create and delete in tenant B: refused.
    fut = admin.create_topics([NewTopic("tenant-b/ns/created-by-alice", 1)])["tenant-b/ns/created-by-alice"]
    with pytest.raises(KafkaException) as e:
        fut.result(10)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    fut = admin.delete_topics([B_TOPIC])[B_TOPIC]
    with pytest.raises(KafkaException) as e:
        fut.result(10)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Bob still reads his tenant's topic.
    bob = kafka_conf(broker, "bob", "tenant-b/ns")
    bp = Producer(bob)
    bp.produce(B_TOPIC, b"b1")
    assert bp.flush(20) == 0
    assert "payroll" not in str(admin.list_topics(timeout=10).topics)


def test_kafka_groups_belong_to_a_namespace(broker):
    from confluent_kafka import Consumer, KafkaError

    # Bob names tenant A's namespace as his user name: its groups are not his.
    bob = kafka_conf(broker, "bob", "tenant-a/ns")
    c = Consumer({**bob, "group.id": f"g-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"})
    c.subscribe(["tenant-b/ns/payroll"])
    errors, deadline = [], time.time() + 15
    while not errors and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error():
            errors.append(m.error())
    c.close()
    assert errors and errors[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED, errors


def test_kafka_python_is_refused_with_the_same_errors(broker):
    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError

    # kafka-python refuses '/' in names: a topic-level grant in the default namespace.
    assert rest(broker, "POST", "/admin/v2/persistent/public/default/kp-alice/permissions/alice", "admin",
                body=["produce"])[0] == 204
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, security_protocol="SASL_PLAINTEXT",
                      sasl_mechanism="PLAIN", sasl_plain_username="tenant-a/ns",
                      sasl_plain_password=f"token:{broker.secrets.roles['alice']}", max_block_ms=10000)
    p.send("kp-alice", b"kp").get(timeout=20)
    with pytest.raises(TopicAuthorizationFailedError):
        p.send("kp-bob", b"kp").get(timeout=20)
    p.close()
    # Reading a topic alice may only write: refused too.
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, security_protocol="SASL_PLAINTEXT",
                      sasl_mechanism="PLAIN", sasl_plain_username="tenant-a/ns",
                      sasl_plain_password=f"token:{broker.secrets.roles['alice']}", enable_auto_commit=False)
    c.assign([TopicPartition("kp-alice", 0)])
    c.seek(TopicPartition("kp-alice", 0), 0)
    with pytest.raises(TopicAuthorizationFailedError):
        for _ in range(20):
            c.poll(timeout_ms=500)
    c.close()


def test_a_role_without_grants_sees_nothing(broker):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    admin = kafka_conf(broker, "admin", "public/default")
    p = Producer(admin)
    p.produce("visible-to-admins", b"x")
    assert p.flush(20) == 0
    assert "visible-to-admins" in AdminClient(admin).list_topics(timeout=10).topics
    nobody = AdminClient(kafka_conf(broker, "nobody", "public/default"))
    assert [t for t in nobody.list_topics(timeout=10).topics if not t.startswith("__")] == []


def test_scram_users_managed_with_kafkas_admin_api(broker):
    """KIP-554 through confluent-kafka: a super-user creates a SCRAM user,
    who then authenticates with SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN; a
    wrong password and an unknown user get the same answer; a non-super-user
    may not manage credentials."""
    from confluent_kafka import KafkaError, KafkaException, Producer
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialDeletion, UserScramCredentialUpsertion)

    admin = AdminClient(kafka_conf(broker, "admin", "public/default"))
    upserts = [UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                            b"carol-secret"),
               UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                            b"carol-secret")]
    for fut in admin.alter_user_scram_credentials(upserts).values():
        fut.result(10)
    described = admin.describe_user_scram_credentials(["carol"])["carol"].result(10)
    assert sorted((i.mechanism, i.iterations) for i in described.scram_credential_infos) == \
        [(ScramMechanism.SCRAM_SHA_256, 4096), (ScramMechanism.SCRAM_SHA_512, 8192)]
    assert rest(broker, "POST", "/admin/v2/namespaces/tenant-a/ns/permissions/carol", "a-admin",
                body=["produce"])[0] == 204

    def produce(mechanism, user, password):
        errors = []
        p = Producer({"bootstrap.servers": broker.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                      "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password,
                      "message.timeout.ms": 8000, "error_cb": lambda e: errors.append(e)})
        delivered = []
        p.produce(f"{A_TOPIC}-scram", b"c", on_delivery=lambda e, m: delivered.append(e))
        p.flush(12)
        return (delivered[0] if delivered else None), errors

    for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"):
        error, _ = produce(mechanism, "carol", "carol-secret")
        assert error is None, (mechanism, error)
    _, wrong = produce("SCRAM-SHA-512", "carol", "guess")
    _, unknown = produce("SCRAM-SHA-512", "mallory", "guess")
    assert wrong and unknown
    assert wrong[0].code() == unknown[0].code() == KafkaError._AUTHENTICATION
    assert "invalid user name or password" in wrong[0].str() and "invalid user name or password" in unknown[0].str()
    assert "carol-secret" not in broker.log()

    # Only super-users manage credentials.
    alice = AdminClient(kafka_conf(broker, "alice", "tenant-a/ns"))
    fut = alice.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"x")])["alice"]
    with pytest.raises(KafkaException) as e:
        fut.result(10)
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # Deleting the credential ends SCRAM for carol.
    for fut in admin.alter_user_scram_credentials(
            [UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_512)]).values():
        fut.result(10)
    _, errors = produce("SCRAM-SHA-512", "carol", "carol-secret")
    assert errors and errors[0].code() == KafkaError._AUTHENTICATION


def test_kafka_acl_apis_read_and_write_the_same_grants(broker):
    """CreateAcls, DescribeAcls and DeleteAcls (confluent-kafka) are grants
    seen through Kafka's eyes: an ALLOW WRITE on a topic is a `produce`
    grant the REST API shows and Produce honours; what the model cannot
    express (DENY) is refused with the reason."""
    from confluent_kafka import KafkaError, KafkaException, Producer
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                       ResourcePatternType, ResourceType)

    topic = "tenant-a/ns/acl-topic"
    a_admin = AdminClient(kafka_conf(broker, "a-admin", "tenant-a/ns"))
    write = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:dave", "*",
                       AclOperation.WRITE, AclPermissionType.ALLOW)
    for fut in a_admin.create_acls([write]).values():
        assert fut.result(10) is None
    assert rest(broker, "GET", f"/admin/v2/persistent/{topic}/permissions", "a-admin")[1]["dave"] == ["produce"]
    found = a_admin.describe_acls(AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.ANY, None, None,
                                                    AclOperation.ANY, AclPermissionType.ANY)).result(10)
    assert [(b.principal, b.operation) for b in found] == [("User:dave", AclOperation.WRITE)]

    def dave_produces():
        delivered = []
        p = Producer({**kafka_conf(broker, "dave", "tenant-a/ns"), "message.timeout.ms": 8000})
        p.produce(topic, b"d", on_delivery=lambda e, m: delivered.append(e))
        p.flush(12)
        return delivered[0]

    assert dave_produces() is None
    deny = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:dave", "*",
                      AclOperation.READ, AclPermissionType.DENY)
    with pytest.raises(KafkaException) as e:
        a_admin.create_acls([deny])[deny].result(10)
    assert "DENY" in e.value.args[0].str()
    alice = AdminClient(kafka_conf(broker, "alice", "tenant-a/ns"))
    with pytest.raises(KafkaException) as e:
        alice.create_acls([write])[write].result(10)
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    deleted = a_admin.delete_acls([AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL,
                                                    "User:dave", None, AclOperation.ANY, AclPermissionType.ANY)])
    assert [b.operation for b in list(deleted.values())[0].result(10)] == [AclOperation.WRITE]
    assert dave_produces().code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_consumer_groups_of_two_tenants_never_meet(broker):
    """The same group id in two tenants is two groups: bob (tenant B)
    neither sees, joins nor disturbs alice's group of that name."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient

    for role, username, topic in (("alice", "tenant-a/ns", A_TOPIC + "-groups"),
                                  ("bob", "tenant-b/ns", B_TOPIC + "-groups")):
        p = Producer(kafka_conf(broker, role, username))
        p.produce(topic, role.encode())
        assert p.flush(20) == 0

    def member(role, username, topic):
        c = Consumer({**kafka_conf(broker, role, username), "group.id": "same-name", "client.id": f"{role}-client",
                      "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
        c.subscribe([topic])
        return c

    alice = member("alice", "tenant-a/ns", A_TOPIC + "-groups")
    got, deadline = None, time.time() + 20
    while got is None and time.time() < deadline:
        m = alice.poll(0.5)
        if m is not None and not m.error():
            got = m.value()
    assert got == b"alice"
    bob = member("bob", "tenant-b/ns", B_TOPIC + "-groups")
    got, deadline = None, time.time() + 20
    while got is None and time.time() < deadline:
        m = bob.poll(0.5)
        if m is not None and not m.error():
            got = m.value()
            alice.poll(0.1)
    assert got == b"bob", "bob's group of the same name got alice's partitions or none"
    bob_admin = AdminClient(kafka_conf(broker, "bob", "tenant-b/ns"))
    described = bob_admin.describe_consumer_groups(["same-name"])["same-name"].result(10)
    assert [m.client_id for m in described.members] == ["bob-client"], described.members
    listed = bob_admin.list_consumer_groups().result(10)
    assert "alice-group" not in {g.group_id for g in listed.valid}
    alice_admin = AdminClient(kafka_conf(broker, "alice", "tenant-a/ns"))
    described = alice_admin.describe_consumer_groups(["same-name"])["same-name"].result(10)
    assert [m.client_id for m in described.members] == ["alice-client"], described.members
    alice.close()
    bob.close()
