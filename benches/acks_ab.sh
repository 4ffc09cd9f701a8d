#!/usr/bin/env bash
# acks=1 against acks=all, alternating rounds against one broker, so that
# the ratio is read from neighbouring rounds of one run (the disk's fsync
# latency drifts on shared machines; a matrix row each is too noisy).
#
#   bash benches/acks_ab.sh           # a warm-up round, then 4 rounds of each, 1.2 GB per round
#   PAIRS=8 bash benches/acks_ab.sh
#
# Same rdkafka_performance flags as ../shared/bench/kafka_bench.sh (1 KiB
# records, one partition, linger.ms=5, batch.size=1 MiB). Not part of the tests.
set -euo pipefail
# shellcheck source=kafka_broker.sh
source "$(dirname "$0")/kafka_broker.sh" bench-acks
BIN="$PERF_HOME/bin"
round=0
run() {
    round=$((round + 1))
    "$BIN/mktopic" 127.0.0.1:9092 "ab-$round" 1 > /dev/null
    sleep 0.3
    local mbps
    mbps=$(timeout -s INT -k 10 120 "$BIN/rdkafka_performance" -P -t "ab-$round" -s 1024 -a "$1" -c 1171875 \
        -b 127.0.0.1:9092 -X linger.ms=5 -X batch.size=1048576 -X batch.num.messages=1000000 -q 2>&1 \
        | grep -o '[0-9.]* MB/s' | tail -1)
    "$BIN/mktopic" 127.0.0.1:9092 "ab-$round" 1 1 > /dev/null 2>&1 || true
    echo "round $round acks=$1: ${mbps:-?}"
}
run 1 > /dev/null # warm-up: fills the tail cache once
for _ in $(seq "${PAIRS:-4}"); do
    run 1
    run -1
done
