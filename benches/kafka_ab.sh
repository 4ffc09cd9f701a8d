#!/usr/bin/env bash
# Two builds of the broker side by side: the same Kafka matrix (../shared/bench's
# kafka_bench.sh) against build A, then B, then A, then B, in one run, so that
# their ratio is read from neighbouring rounds (the machine's speed drifts).
#
#   bash benches/kafka_ab.sh DIR_A DIR_B
#
# Each DIR holds a release `broker` and `libkafka.so` (e.g. a checkout's
# target/release). Knobs: PAIRS (2), and kafka_bench.sh's own (defaults here:
# PARTS="1 8" SIZES=1024 ACKS="1 -1" CODECS=none TARGET_SECS=10). Each round
# starts the broker afresh with the shipped conf/broker.conf (its own data
# directory, logLevel=warn) and warms it up with one unmeasured produce first.
# ENV_A and ENV_B add environment settings to one side's broker, e.g. the
# same build with and without etcd:
#   ENV_B="POLYPORT_metadataStoreUrl=etcd:http://127.0.0.1:2379" bash benches/kafka_ab.sh R R
# Not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 DIR_A DIR_B" >&2; exit 2; }
SHARED="${SHARED_BENCH:-../shared/bench}"
PERF_HOME="${PERF_HOME:-$HOME/.cache/kafka-bench}"
export PERF_HOME
[ -x "$PERF_HOME/bin/rdkafka_performance" ] || bash "$SHARED/setup.sh"
export PARTS="${PARTS:-1 8}" SIZES="${SIZES:-1024}" ACKS="${ACKS:-1 -1}" CODECS="${CODECS:-none}"
export TARGET_SECS="${TARGET_SECS:-10}" COUNT_1K="${COUNT_1K:-1000000}"
WORK="$PWD/target/bench-ab"
BROKER=
stop() { [ -n "$BROKER" ] && { kill -TERM "$BROKER" 2>/dev/null; wait "$BROKER" 2>/dev/null || true; }; BROKER=; }
trap 'stop; rm -rf "$WORK"' EXIT
round() {
    local label=$1 dir extra=${3:-}
    dir=$(cd "$2" && pwd)
    rm -rf "$WORK" && mkdir -p "$WORK/protocols"
    cp "$dir/libkafka.so" "$WORK/protocols/"
    POLYPORT_dataDirectory="$WORK/data" POLYPORT_logLevel=warn POLYPORT_protocolHandlerDirectory="$WORK/protocols" \
        POLYPORT_kafkaListeners=PLAINTEXT://127.0.0.1:9092 \
        env $extra "$dir/broker" --config conf/broker.conf > "$WORK/broker.log" 2>&1 &
    BROKER=$!
    for _ in $(seq 100); do grep -q "broker ready" "$WORK/broker.log" 2>/dev/null && break; sleep 0.1; done
    "$PERF_HOME/bin/mktopic" 127.0.0.1:9092 warm-up 1 > /dev/null
    timeout -s INT -k 10 120 "$PERF_HOME/bin/rdkafka_performance" -P -t warm-up -s 1024 -a 1 -c 500000 \
        -b 127.0.0.1:9092 -X linger.ms=5 -X batch.size=1048576 -q > /dev/null 2>&1 || true
    echo "# $label ($dir${extra:+, $extra}), pid $BROKER"
    bash "$SHARED/kafka_bench.sh" 127.0.0.1:9092 "$BROKER"
    stop
}
for pair in $(seq "${PAIRS:-2}"); do
    round "A round $pair" "$1" "${ENV_A:-}"
    round "B round $pair" "$2" "${ENV_B:-}"
done
