#!/usr/bin/env bash
# Kafka throughput with librdkafka's rdkafka_performance, next to this
# machine's limits measured in the same run (../shared/bench: limits.sh for
# loopback TCP, disk and memcpy; kafka_bench.sh for the produce/consume matrix).
#
#   make bench-kafka                  # builds in release, sets up the tools once
#   PARTS="1" SIZES="1024" ACKS="1 -1" CODECS=none make bench-kafka   # a smaller matrix
#   ROUNDS=1 make bench-kafka         # one round (default 2: the first warms memory up)
#   CEILING=1 make bench-kafka        # first the same matrix against librdkafka's mock
#                                     # cluster (stores nothing): the load generator's own
#                                     # ceiling on this machine, next to the broker's figures
#
# The broker runs from target/release with its own data directory under
# target/bench-kafka (deleted afterwards) and the shipped conf/broker.conf,
# except for the data directory and the log level. Not part of the tests.
set -euo pipefail
# shellcheck source=kafka_broker.sh
source "$(dirname "$0")/kafka_broker.sh" bench-kafka
echo "# limits of this machine, measured now"
bash "$SHARED/limits.sh" "$WORK" | grep -E "loopback|disk|memcpy|crc" || true
if [ "${CEILING:-0}" = 1 ]; then
    # librdkafka's in-process mock cluster reads each request and keeps
    # almost nothing: what rdkafka_performance reaches when the broker costs
    # next to nothing. Two rounds, like the broker's; read the last.
    "$PERF_HOME/bin/mockbroker" 600 > "$WORK/mock.log" 2>&1 &
    MOCK=$!
    for _ in $(seq 50); do grep -qE '^[0-9.]+:[0-9]+$' "$WORK/mock.log" 2>/dev/null && break; sleep 0.1; done
    MOCK_BOOT=$(grep -m1 -E '^[0-9.]+:[0-9]+$' "$WORK/mock.log")
    for round in 1 2; do
        echo "# client ceiling: the matrix against librdkafka's mock cluster ($MOCK_BOOT), round $round of 2"
        SKIP_CONSUME=1 bash "$SHARED/kafka_bench.sh" "$MOCK_BOOT" "$MOCK"
    done
    kill "$MOCK" 2>/dev/null || true
fi
# The first touch of memory is slow on these machines (../shared/bench/README):
# the first round also fills the broker's tail cache (managedLedgerCacheSizeMB),
# whose memory later rounds reuse. Read the last round.
ROUNDS="${ROUNDS:-2}"
for round in $(seq "$ROUNDS"); do
    echo "# Kafka matrix against target/release/broker (pid $BROKER), round $round of $ROUNDS"
    bash "$SHARED/kafka_bench.sh" 127.0.0.1:9092 "$BROKER"
done
echo "# broker memory at the end: $(grep -E 'VmHWM|VmRSS|RssAnon|RssFile' /proc/$BROKER/status | tr -s ' \n' ' ')"
