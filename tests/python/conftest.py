"""Starts the real broker binary (target/debug/broker) with the Kafka handler
for the Python client tests. Each test module gets its own broker on free
ports with its own data directory."""

import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"


_GIVEN = set()


def free_port() -> int:
    """A free port never handed out before in this process (the kernel may
    give one ephemeral port to two binds in a row; a broker configured with
    one port twice fails to start)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


class Broker:
    def __init__(self, extra: str = "", listeners: str = ""):
        """`listeners`: a kafkaListeners value replacing the one PLAINTEXT
        listener (`{port}` stands for `self.port`)."""
        self.dir = tempfile.TemporaryDirectory(prefix="polyport-py-")
        base = Path(self.dir.name)
        (base / "protocols").mkdir()
        lib = TARGET / "libkafka.so"
        assert lib.exists(), f"{lib} is missing: run `make build-debug`"
        (base / "protocols" / "libkafka.so").write_bytes(lib.read_bytes())
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.pulsar_port = free_port()
        self.pulsar_url = f"pulsar://127.0.0.1:{self.pulsar_port}"
        self.web_port = free_port()
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.conf = base / "broker.conf"
        self.conf.write_text(
            "messagingProtocols=kafka\n"
            f"protocolHandlerDirectory={base / 'protocols'}\n"
            f"dataDirectory={base / 'data'}\n"
            "advertisedAddress=127.0.0.1\n"
            f"kafkaListeners={listeners.format(port=self.port) if listeners else f'PLAINTEXT://127.0.0.1:{self.port}'}\n"
            f"brokerServicePort={self.pulsar_port}\n"
            f"webServicePort={self.web_port}\n"
            "brokerShutdownTimeoutMs=3000\n"
            "maxMessageSize=1048576\n"
            f"{extra}\n"
        )
        self.log_path = base / "broker.log"
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(TARGET / "broker"), "--config", str(self.conf)], stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            if "broker ready" in self.log():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited:\n{self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"broker not ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=15)
        self.proc = None
        return code


@pytest.fixture(scope="module")
def broker():
    b = Broker().start()
    yield b
    code = b.stop()
    assert code == 0, b.log()
    b.dir.cleanup()


@pytest.fixture
def pulsar_client(broker):
    """A Python pulsar-client connected to the module's broker."""
    import pulsar  # only the Pulsar tests need it

    c = pulsar.Client(broker.pulsar_url, operation_timeout_seconds=10,
                      logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))
    yield c
    c.close()


def kafka_read(bootstrap, topic, count, timeout=20):
    """Up to `count` records of partition 0 of `topic`, from offset 0, with confluent-kafka."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"x-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out, deadline = [], time.time() + timeout
    while len(out) < count and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            out.append(m)
    c.close()
    return out
