"""Security on the real broker with real clients (issue 16): TLS on Kafka
and Pulsar listeners, token authentication (Kafka SASL PLAIN with
`token:<jwt>` and OAUTHBEARER; Pulsar's token and TLS methods), client
certificates, and the ways it breaks: wrong, expired and foreign tokens,
plaintext clients on TLS ports, lying SASL frames. Every failure must name
its cause in the broker's log and never a secret, and the broker must keep
serving the others."""

import socket
import struct
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, TARGET, Broker, free_port

SCRIPTS = ROOT / "tests" / "scripts"


def broker_tool(*args) -> str:
    return subprocess.run([str(TARGET / "broker"), *args], check=True, capture_output=True, text=True).stdout.strip()


class Secrets:
    """A throwaway PKI (tests/scripts/make-pki.sh), a token key and tokens."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="polyport-pki-")
        self.dir = Path(self.tmp.name)
        subprocess.run(["bash", str(SCRIPTS / "make-pki.sh"), str(self.dir), "alice", "bob"], check=True)
        self.secret = self.dir / "secret.key"
        broker_tool("tokens", "create-secret-key", "--output", str(self.secret))
        self.other = self.dir / "other.key"
        broker_tool("tokens", "create-secret-key", "--output", str(self.other))
        self.alice = self.token("alice")
        self.expired = self.token("alice", expiry="1s")
        self.foreign = broker_tool("tokens", "create", "--secret-key", f"file://{self.other}", "--subject", "alice")
        time.sleep(1.1)  # `expired` is

    def token(self, role, expiry=None):
        args = ["tokens", "create", "--secret-key", f"file://{self.secret}", "--subject", role]
        if expiry:
            args += ["--expiry-time", expiry]
        return broker_tool(*args)

    def path(self, name) -> str:
        return str(self.dir / name)


@pytest.fixture(scope="module")
def secrets():
    s = Secrets()
    yield s
    s.tmp.cleanup()


@pytest.fixture(scope="module")
def secure(secrets):
    """A broker with SASL_SSL, SASL_PLAINTEXT and SSL Kafka listeners and
    a Pulsar TLS port, tokens and client certificates both proving roles."""
    ports = {"sasl_plain": free_port(), "ssl": free_port(), "pulsar_tls": free_port(), "web_tls": free_port()}
    b = Broker(
        listeners="SASL_SSL://127.0.0.1:{port}"
        + f",SASL_PLAINTEXT://127.0.0.1:{ports['sasl_plain']},SSL://127.0.0.1:{ports['ssl']}",
        extra="\n".join([
            f"brokerServicePortTls={ports['pulsar_tls']}",
            f"webServicePortTls={ports['web_tls']}",
            f"tlsCertificateFilePath={secrets.path('server.pem')}",
            f"tlsKeyFilePath={secrets.path('server.key')}",
            f"tlsTrustCertsFilePath={secrets.path('ca.pem')}",
            "authenticationEnabled=true",
            "authenticationProviders=org.apache.pulsar.broker.authentication.AuthenticationProviderToken,"
            "org.apache.pulsar.broker.authentication.AuthenticationProviderTls",
            f"tokenSecretKey=file://{secrets.secret}",
            "saslAllowedMechanisms=PLAIN,OAUTHBEARER,SCRAM-SHA-512",
        ]),
    )
    b.ports = ports
    b.start()
    yield b
    log = b.log()
    code = b.stop()
    assert code == 0, b.log()
    # No secret ever reaches the log.
    for secret in (secrets.alice, secrets.expired, secrets.foreign):
        assert secret not in log and secret.split(".")[2] not in log
    b.dir.cleanup()


def sasl_ssl(secrets, bootstrap, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": secrets.path("ca.pem"),
        "sasl.mechanism": "PLAIN",
        "sasl.username": "public/default",
        "sasl.password": f"token:{secrets.alice}",
    }
    conf.update(extra)
    return conf


def produce_and_read(producer_conf, consumer_conf, topic, n=20):
    from confluent_kafka import Consumer, Producer, TopicPartition

    p = Producer({**producer_conf, "acks": "all"})
    for i in range(n):
        p.produce(topic, f"m{i}".encode())
    assert p.flush(20) == 0
    c = Consumer({**consumer_conf, "group.id": f"g-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got, deadline = [], time.time() + 20
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value().decode())
    c.close()
    return got


def test_confluent_kafka_over_sasl_ssl_with_a_token(secrets, secure):
    conf = sasl_ssl(secrets, secure.bootstrap)
    assert produce_and_read(conf, conf, "sasl-ssl-plain") == [f"m{i}" for i in range(20)]


def test_confluent_kafka_oauthbearer(secrets, secure):
    expiry = time.time() + 3600

    conf = sasl_ssl(secrets, secure.bootstrap, **{"sasl.mechanism": "OAUTHBEARER"})
    for k in ("sasl.username", "sasl.password"):
        conf.pop(k)
    conf["oauth_cb"] = lambda _config: (secrets.alice, expiry)
    assert produce_and_read(conf, conf, "sasl-oauthbearer") == [f"m{i}" for i in range(20)]


def test_kafka_python_over_sasl_ssl_with_a_token(secrets, secure):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    common = dict(bootstrap_servers=secure.bootstrap, security_protocol="SASL_SSL", ssl_cafile=secrets.path("ca.pem"),
                  sasl_mechanism="PLAIN", sasl_plain_username="public/default",
                  sasl_plain_password=f"token:{secrets.alice}")
    p = KafkaProducer(acks="all", **common)
    for i in range(10):
        p.send("kp-sasl-ssl", f"k{i}".encode()).get(timeout=20)
    p.close()
    c = KafkaConsumer(enable_auto_commit=False, consumer_timeout_ms=10000, **common)
    c.assign([TopicPartition("kp-sasl-ssl", 0)])
    c.seek_to_beginning()
    got = [m.value.decode() for _, m in zip(range(10), c)]
    c.close()
    assert got == [f"k{i}" for i in range(10)]


@pytest.fixture(scope="module")
def scram_user(secrets, secure):
    """A SCRAM-SHA-512 user made with Kafka's admin API (authorization is off here)."""
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    admin = AdminClient(sasl_ssl(secrets, secure.bootstrap))
    upsert = UserScramCredentialUpsertion("erin", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"erin-pw")
    for fut in admin.alter_user_scram_credentials([upsert]).values():
        fut.result(10)
    return "erin", "erin-pw"


def test_scram_sha_512_over_sasl_ssl(secrets, secure, scram_user):
    from kafka import KafkaProducer

    user, password = scram_user
    conf = sasl_ssl(secrets, secure.bootstrap, **{"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user,
                                                  "sasl.password": password})
    assert produce_and_read(conf, conf, "scram-ssl", n=5) == [f"m{i}" for i in range(5)]
    p = KafkaProducer(bootstrap_servers=secure.bootstrap, security_protocol="SASL_SSL",
                      ssl_cafile=secrets.path("ca.pem"), sasl_mechanism="SCRAM-SHA-512",
                      sasl_plain_username=user, sasl_plain_password=password)
    p.send("scram-ssl", b"kafka-python").get(timeout=20)
    p.close()
    assert password not in secure.log()


def test_kafka_python_oauthbearer_over_sasl_ssl(secrets, secure):
    from kafka import KafkaProducer
    from kafka.net.sasl.oauth import AbstractTokenProvider

    class Tokens(AbstractTokenProvider):
        def token(self):
            return secrets.alice

    p = KafkaProducer(bootstrap_servers=secure.bootstrap, security_protocol="SASL_SSL",
                      ssl_cafile=secrets.path("ca.pem"), sasl_mechanism="OAUTHBEARER",
                      sasl_oauth_token_provider=Tokens())
    p.send("kp-oauth", b"x").get(timeout=20)
    p.close()


def test_client_certificate_on_the_ssl_listener(secrets, secure):
    conf = {
        "bootstrap.servers": f"127.0.0.1:{secure.ports['ssl']}",
        "security.protocol": "SSL",
        "ssl.ca.location": secrets.path("ca.pem"),
        "ssl.certificate.location": secrets.path("client-bob.pem"),
        "ssl.key.location": secrets.path("client-bob.key"),
    }
    assert produce_and_read(conf, conf, "mtls-topic", n=5) == [f"m{i}" for i in range(5)]


def auth_failure(conf, broker):
    """What librdkafka reports for `conf`, which must fail to authenticate."""
    from confluent_kafka import Producer

    errors = []
    p = Producer({**conf, "error_cb": lambda e: errors.append(e), "socket.timeout.ms": 5000,
                  "message.timeout.ms": 5000})
    p.produce("never-written", b"x")
    deadline = time.time() + 15
    while not errors and time.time() < deadline:
        p.poll(0.2)
    p.purge()
    p.flush(1)
    assert errors, "no error reported"
    return errors[0]


@pytest.mark.parametrize("which,reason", [
    ("expired", "token expired"),
    ("foreign", "signature does not match"),
    ("garbage", "not a JWT"),
    ("no-token-prefix", "invalid user name or password"),
])
def test_bad_credentials_get_a_clear_error(secrets, secure, which, reason):
    from confluent_kafka import KafkaError

    password = {
        "expired": f"token:{secrets.expired}",
        "foreign": f"token:{secrets.foreign}",
        "garbage": "token:not.a.jwt",
        "no-token-prefix": "hunter2",
    }[which]
    conf = sasl_ssl(secrets, f"127.0.0.1:{secure.ports['sasl_plain']}",
                    **{"security.protocol": "SASL_PLAINTEXT", "sasl.password": password})
    conf.pop("ssl.ca.location")
    error = auth_failure(conf, secure)
    assert error.code() == KafkaError._AUTHENTICATION, error
    assert reason in error.str(), error.str()
    assert reason in secure.log()
    # The broker goes on serving the others.
    good = sasl_ssl(secrets, secure.bootstrap)
    assert produce_and_read(good, good, f"after-{which}", n=2) == ["m0", "m1"]


def test_plaintext_client_on_a_tls_port_is_named_in_the_log(secrets, secure):
    conf = {"bootstrap.servers": secure.bootstrap, "security.protocol": "PLAINTEXT"}
    auth_failure(conf, secure)
    assert "not a TLS client" in secure.log()


def test_a_client_certificate_from_another_ca_is_refused(secrets, secure):
    # librdkafka sends no certificate the server's CA list does not name
    # (and is then anonymous, as Kafka has it); Pulsar's client sends it.
    import pulsar

    c = pulsar_client(f"pulsar+ssl://127.0.0.1:{secure.ports['pulsar_tls']}",
                      pulsar.AuthenticationTLS(secrets.path("rogue-client.pem"), secrets.path("rogue-client.key")),
                      tls_trust_certs_file_path=secrets.path("ca.pem"))
    try:
        with pytest.raises(Exception):
            c.create_producer("persistent://public/default/rogue")
    finally:
        c.close()
    assert "UnknownIssuer" in secure.log()


def kafka_frame(api_key, version, correlation, body=b"", client=b"raw"):
    header = struct.pack(">hhih", api_key, version, correlation, len(client)) + client
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def read_frame(sock):
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    return recv_exact(sock, size)


def recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return out


def closed(sock, timeout=5.0):
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def handshake(sock, mechanism=b"PLAIN"):
    # SaslHandshake v1: mechanism as a string.
    sock.sendall(kafka_frame(17, 1, 1, struct.pack(">h", len(mechanism)) + mechanism))
    response = read_frame(sock)
    correlation, error = struct.unpack(">ih", response[:6])
    return correlation, error


def sasl_authenticate(sock, auth_bytes, correlation):
    """SaslAuthenticate v1: (error code, error message, auth bytes)."""
    sock.sendall(kafka_frame(36, 1, correlation, struct.pack(">i", len(auth_bytes)) + auth_bytes))
    body = read_frame(sock)[4:]
    error = struct.unpack(">h", body[:2])[0]
    size = struct.unpack(">h", body[2:4])[0]
    message = body[4:4 + max(size, 0)].decode() if size >= 0 else None
    rest = body[4 + max(size, 0):]
    n = struct.unpack(">i", rest[:4])[0]
    return error, message, rest[4:4 + n]


def test_scram_with_a_wrong_nonce_is_named_and_refused(secrets, secure, scram_user):
    with socket.create_connection(("127.0.0.1", secure.ports["sasl_plain"]), timeout=10) as s:
        assert handshake(s, b"SCRAM-SHA-512") == (1, 0)
        error, _, server_first = sasl_authenticate(s, b"n,,n=erin,r=clientnonce", 2)
        assert error == 0 and server_first.startswith(b"r=clientnonce")
        error, message, _ = sasl_authenticate(s, b"c=biws,r=clientnonceFORGED,p=AAAA", 3)
        assert error == 58 and "nonce" in message, message
        assert closed(s)


@pytest.mark.parametrize("case", ["lying-size", "truncated", "oversized", "request-before-auth", "bad-mechanism"])
def test_hostile_sasl_frames(secrets, secure, case):
    with socket.create_connection(("127.0.0.1", secure.ports["sasl_plain"]), timeout=10) as s:
        if case == "bad-mechanism":
            _, error = handshake(s, b"GSSAPI")
            assert error == 33  # UNSUPPORTED_SASL_MECHANISM
            return
        if case == "request-before-auth":
            # Metadata v1 with no topics, before any SASL: Kafka closes.
            s.sendall(kafka_frame(3, 1, 7, struct.pack(">i", -1)))
            assert closed(s)
            return
        correlation, error = handshake(s)
        assert (correlation, error) == (1, 0)
        if case == "lying-size":
            # SaslAuthenticate v1 whose auth_bytes claim 2 GB and carry 5.
            body = struct.pack(">i", 0x7FFFFFF0) + b"\0a\0b"
            s.sendall(kafka_frame(36, 1, 2, body))
        elif case == "truncated":
            frame = kafka_frame(36, 1, 2, struct.pack(">i", 40) + b"\0user\0tok")
            s.sendall(frame[: len(frame) - 3])
            s.shutdown(socket.SHUT_WR)
        else:
            s.sendall(struct.pack(">i", 0x7FFFFFFF))
        try:
            assert closed(s)
        except (socket.timeout, TimeoutError):
            pytest.fail("the broker kept a connection whose SASL frame lied")
    good = sasl_ssl(secrets, secure.bootstrap)
    assert produce_and_read(good, good, f"after-{case}", n=2) == ["m0", "m1"]


def pulsar_client(url, auth, **kw):
    import pulsar

    return pulsar.Client(url, authentication=auth, operation_timeout_seconds=5,
                         logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error), **kw)


def test_pulsar_client_over_tls_with_a_token(secrets, secure):
    import pulsar

    c = pulsar_client(f"pulsar+ssl://127.0.0.1:{secure.ports['pulsar_tls']}", pulsar.AuthenticationToken(secrets.alice),
                      tls_trust_certs_file_path=secrets.path("ca.pem"))
    try:
        consumer = c.subscribe("persistent://public/default/pulsar-tls", "s",
                               initial_position=pulsar.InitialPosition.Earliest)
        producer = c.create_producer("persistent://public/default/pulsar-tls")
        for i in range(5):
            producer.send(f"p{i}".encode())
        got = [consumer.receive(10000).data().decode() for _ in range(5)]
        assert got == [f"p{i}" for i in range(5)]
    finally:
        c.close()


def test_pulsar_client_with_a_client_certificate(secrets, secure):
    import pulsar

    c = pulsar_client(f"pulsar+ssl://127.0.0.1:{secure.ports['pulsar_tls']}",
                      pulsar.AuthenticationTLS(secrets.path("client-alice.pem"), secrets.path("client-alice.key")),
                      tls_trust_certs_file_path=secrets.path("ca.pem"))
    try:
        c.create_producer("persistent://public/default/pulsar-mtls").send(b"x")
    finally:
        c.close()


@pytest.mark.parametrize("which,reason", [
    ("none", "requires authentication"),
    ("expired", "token expired"),
    ("foreign", "signature does not match"),
])
def test_pulsar_refuses_bad_credentials(secrets, secure, which, reason):
    import pulsar

    auth = {"none": None, "expired": pulsar.AuthenticationToken(secrets.expired),
            "foreign": pulsar.AuthenticationToken(secrets.foreign)}[which]
    c = pulsar_client(secure.pulsar_url, auth)
    try:
        with pytest.raises(Exception):
            c.create_producer(f"persistent://public/default/refused-{which}")
    finally:
        c.close()
    assert reason in secure.log()


def test_pulsar_refreshes_expiring_tokens(secrets, secure):
    """A token that expires while connected is refreshed with AUTH_CHALLENGE:
    a client whose supplier gives fresh tokens keeps its connection; one
    whose token stays expired is disconnected with the reason logged."""
    import pulsar

    fresh = pulsar_client(secure.pulsar_url, pulsar.AuthenticationToken(lambda: secrets.token("alice", expiry="2s")))
    stale_token = secrets.token("alice", expiry="2s")
    stale = pulsar_client(secure.pulsar_url, pulsar.AuthenticationToken(stale_token))
    try:
        producer = fresh.create_producer("persistent://public/default/refreshed")
        stale.create_producer("persistent://public/default/stale")
        time.sleep(4)
        producer.send(b"still here")
        deadline = time.time() + 10
        while "credentials refresh failed" not in secure.log() and time.time() < deadline:
            time.sleep(0.2)
        log = secure.log()
        assert 'credentials refresh failed; closing method=token reason="token expired"' in log, log[-3000:]
        assert log.count("credentials refresh failed") <= 3, "the fresh client's refresh failed too"
    finally:
        fresh.close()
        stale.close()


def test_the_admin_api_over_tls(secrets, secure):
    import json
    import ssl
    import urllib.error
    import urllib.request

    url = f"https://127.0.0.1:{secure.ports['web_tls']}/admin/v2/tenants"
    context = ssl.create_default_context(cafile=secrets.path("ca.pem"))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {secrets.alice}"})
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        assert response.status == 200 and "public" in json.loads(response.read())
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url, timeout=10, context=context)
    assert e.value.code == 401
    # Plain HTTP on the TLS port: no answer, a named reason in the log.
    with pytest.raises(Exception):
        urllib.request.urlopen(url.replace("https", "http"), timeout=10)
    deadline = time.time() + 10
    while "admin connection closed: not a TLS client" not in secure.log() and time.time() < deadline:
        time.sleep(0.1)
    assert "admin connection closed: not a TLS client" in secure.log(), secure.log()[-2000:]
