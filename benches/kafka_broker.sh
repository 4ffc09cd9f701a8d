# Sourced by the Kafka benchmark scripts (benches/kafka.sh, benches/soak.sh):
# makes sure ../shared/bench's tools are built, builds the release broker and
# starts it on 127.0.0.1:9092 with the shipped conf/broker.conf, its own data
# directory under target/$1 (deleted on exit) and logLevel=warn. Sets SHARED,
# PERF_HOME, WORK and BROKER (the pid).
cd "$(dirname "$0")/.."
SHARED="${SHARED_BENCH:-../shared/bench}"
PERF_HOME="${PERF_HOME:-$HOME/.cache/kafka-bench}"
export PERF_HOME
[ -x "$PERF_HOME/bin/rdkafka_performance" ] || bash "$SHARED/setup.sh"
make build
WORK="$PWD/target/$1"
rm -rf "$WORK" && mkdir -p "$WORK"
POLYPORT_dataDirectory="$WORK/data" POLYPORT_logLevel=warn POLYPORT_kafkaListeners=PLAINTEXT://127.0.0.1:9092 \
    ./target/release/broker --config conf/broker.conf > "$WORK/broker.log" 2>&1 &
BROKER=$!
trap 'kill -TERM $BROKER 2>/dev/null; wait $BROKER 2>/dev/null; rm -rf "$WORK/data"' EXIT
for _ in $(seq 50); do grep -q "broker ready" "$WORK/broker.log" 2>/dev/null && break; sleep 0.1; done
