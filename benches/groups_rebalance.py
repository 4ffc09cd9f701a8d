"""Rebalance time of the Kafka group coordinator with a real client
(confluent-kafka / librdkafka), against target/release/broker started here.

Two consumers A and B share a group on a 4-partition topic while messages are
produced to every partition all the time. B leaves (close: LeaveGroup), or is
killed with SIGKILL (a subprocess member: no LeaveGroup, so the coordinator
waits for its session to time out). Measured: from B's close (or kill) to A's
first message from a partition B owned. With the eager protocol, A learns of
the rebalance from its next heartbeat, so heartbeat.interval.ms bounds the
leave case and session.timeout.ms the kill case.

Run: `make bench-groups`, or .venv/bin/python benches/groups_rebalance.py
after `cargo build --release -p polyport-host -p polyport-kafka`.
Knob: BENCH_RUNS (repetitions of each leave case, default 5).
"""

import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
PARTITIONS = 4
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
SESSION_MS = 6000  # the kill case's session timeout (Kafka's minimum group.min.session.timeout.ms)
PHASE = random.Random(1)  # seeded: runs of the script close B at the same phases


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """target/release/broker on a free port with its own data directory (as
    tests/python/conftest.py, which this script does not import)."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="polyport-bench-")
        base = Path(self.dir.name)
        (base / "protocols").mkdir()
        lib = TARGET / "libkafka.so"
        assert lib.exists(), f"{lib} is missing: run `make bench-groups`"
        (base / "protocols" / "libkafka.so").write_bytes(lib.read_bytes())
        port = free_port()
        self.bootstrap = f"127.0.0.1:{port}"
        conf = base / "broker.conf"
        conf.write_text(
            "messagingProtocols=kafka\n"
            f"protocolHandlerDirectory={base / 'protocols'}\n"
            f"dataDirectory={base / 'data'}\n"
            "advertisedAddress=127.0.0.1\n"
            f"kafkaListeners=PLAINTEXT://127.0.0.1:{port}\n"
            f"brokerServicePort={free_port()}\n"
            f"webServicePort={free_port()}\n"
            "brokerShutdownTimeoutMs=3000\n"
            "groupInitialRebalanceDelayMs=0\n"
        )
        self.log_path = base / "broker.log"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(TARGET / "broker"), "--config", str(conf)],
                                     stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.time() + 20
        while "broker ready" not in self.log():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"broker did not start:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=15)
        assert code == 0, f"broker exited with {code}:\n{self.log()}"
        self.dir.cleanup()


def produce_forever(bootstrap, topic, stop):
    """A message to every partition every 2 ms, so a reassigned partition
    always has something to deliver."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "log.connection.close": False})
    i = 0
    while not stop.is_set():
        for partition in range(PARTITIONS):
            p.produce(topic, value=b"m%d" % i, partition=partition)
        i += 1
        p.poll(0)
        time.sleep(0.002)
    p.flush(10)


def consumer(bootstrap, group, heartbeat_ms, **extra):
    """librdkafka's defaults (eager range/roundrobin assignment, auto commit,
    session.timeout.ms=45000) but for the heartbeat interval."""
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "latest",
        "heartbeat.interval.ms": heartbeat_ms,
        "log.connection.close": False,
        **extra,
    })


def poll_until(c, done, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = c.poll(0.05)
        if done(m):
            return m
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def assigned(c):
    return {tp.partition for tp in c.assignment()}


def message_from(partitions):
    return lambda m: m is not None and not m.error() and m.partition() in partitions


def leave_case(bootstrap, topic, heartbeat_ms):
    """B closes; seconds until A has a message from one of B's partitions."""
    group = f"bench-leave-{uuid.uuid4().hex[:8]}"
    a = consumer(bootstrap, group, heartbeat_ms)
    a.subscribe([topic])
    poll_until(a, lambda m: len(assigned(a)) == PARTITIONS, 30, "A to own every partition")
    b = consumer(bootstrap, group, heartbeat_ms)
    b.subscribe([topic])
    # B polls in its own thread (each consumer stays in one thread) until told
    # to close; A keeps polling here, as the rebalance needs both to rejoin.
    close, closing = threading.Event(), {}
    owned = set()

    def run_b():
        while not close.is_set():
            b.poll(0.05)
            owned.update(assigned(b))
        closing["at"] = time.monotonic()
        b.close()  # LeaveGroup

    thread = threading.Thread(target=run_b)
    thread.start()
    try:
        poll_until(a, lambda m: len(assigned(a)) == PARTITIONS // 2 and len(owned) == PARTITIONS // 2,
                   60, "the partitions to be shared")
        b_partitions = set(owned)
        poll_until(a, message_from(assigned(a)), 10, "A to consume")
        # A's heartbeats are in phase with the join that just ended: without a
        # random wait, B would always leave right after one (the worst case).
        until = time.time() + PHASE.uniform(0, heartbeat_ms / 1000)
        poll_until(a, lambda m: time.time() >= until, 10, "the wait")
        close.set()
        poll_until(a, message_from(b_partitions), 60, "A to consume from B's partitions")
        elapsed = time.monotonic() - closing["at"]
    finally:
        close.set()
        thread.join()
        a.close()
    return elapsed


MEMBER = textwrap.dedent("""
    import sys
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "auto.offset.reset": "latest",
                  "session.timeout.ms": int(sys.argv[4]), "heartbeat.interval.ms": 500})
    c.subscribe([sys.argv[3]])
    told = False
    while True:
        c.poll(0.05)
        parts = sorted(tp.partition for tp in c.assignment())
        if parts and not told:
            print(",".join(map(str, parts)), flush=True)
            told = True
""")


def kill_case(bootstrap, topic):
    """B (a subprocess) is killed with SIGKILL: no LeaveGroup."""
    group = f"bench-kill-{uuid.uuid4().hex[:8]}"
    a = consumer(bootstrap, group, 500, **{"session.timeout.ms": SESSION_MS})
    a.subscribe([topic])
    poll_until(a, lambda m: len(assigned(a)) == PARTITIONS, 30, "A to own every partition")
    b = subprocess.Popen([sys.executable, "-c", MEMBER, bootstrap, group, topic, str(SESSION_MS)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = []
        reader = threading.Thread(target=lambda: lines.append(b.stdout.readline().strip()), daemon=True)
        reader.start()
        poll_until(a, lambda m: len(assigned(a)) == PARTITIONS // 2 and not reader.is_alive(),
                   60, "the partitions to be shared")
        b_partitions = {int(p) for p in lines[0].split(",")}
        poll_until(a, message_from(assigned(a)), 10, "A to consume")
        b.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        b.wait(10)
        poll_until(a, message_from(b_partitions), 60, "A to consume from B's partitions")
        return time.monotonic() - killed
    finally:
        b.kill()
        a.close()


def main():
    broker = Broker()
    stop = threading.Event()
    producer = None
    try:
        topic = f"bench-rebalance-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap, "log.connection.close": False})  # kept: a dropped client cancels
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(15)
        producer = threading.Thread(target=produce_forever, args=(broker.bootstrap, topic, stop))
        producer.start()
        print(f"rebalance benchmark: 2 consumers, {PARTITIONS} partitions, B leaves or is killed; "
              "time from B's close/kill to A's first message from B's partitions")
        print(f"{'case':<42} {'runs':>4} {'median ms':>10} {'max ms':>8}  all ms")
        cases = [(f"B closes, heartbeat.interval.ms={hb}", lambda hb=hb: leave_case(broker.bootstrap, topic, hb), RUNS)
                 for hb in (3000, 500)]
        cases.append((f"B killed, session.timeout.ms={SESSION_MS}, hb=500",
                      lambda: kill_case(broker.bootstrap, topic), 1))
        for name, run, runs in cases:
            ms = [run() * 1000 for _ in range(runs)]
            print(f"{name:<42} {runs:>4} {statistics.median(ms):>10.0f} {max(ms):>8.0f}  "
                  + " ".join(f"{m:.0f}" for m in ms), flush=True)
    finally:
        stop.set()
        if producer is not None:
            producer.join()
        broker.stop()


if __name__ == "__main__":
    main()
