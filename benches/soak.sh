#!/usr/bin/env bash
# Memory soak: one broker takes many times its cache budget in writes, and
# its resident memory is sampled after every round. The issue's bound is
# "by configuration, not by the volume of data written": RSS must level off
# after the first rounds (cache filled, allocator warmed) and stay there.
#
#   make bench-soak                   # 16 rounds of 1.2 GB (about 19 GB), 1 and 8 partitions
#   ROUNDS=40 make bench-soak         # longer
#
# Each round creates a topic, produces 1.2 GB of 1 KiB records to it with
# rdkafka_performance (acks=1; every fourth round acks=all), reads it all
# back and deletes it, so the disk never holds more than two rounds.
# Not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SHARED_BENCH:-../shared/bench}"
PERF_HOME="${PERF_HOME:-$HOME/.cache/kafka-bench}"
export PERF_HOME
[ -x "$PERF_HOME/bin/rdkafka_performance" ] || bash "$SHARED/setup.sh"
make build
BIN="$PERF_HOME/bin"
WORK="$PWD/target/bench-soak"
rm -rf "$WORK" && mkdir -p "$WORK"
POLYPORT_dataDirectory="$WORK/data" POLYPORT_logLevel=warn POLYPORT_kafkaListeners=PLAINTEXT://127.0.0.1:9092 \
    ./target/release/broker --config conf/broker.conf > "$WORK/broker.log" 2>&1 &
BROKER=$!
trap 'kill -TERM $BROKER 2>/dev/null; wait $BROKER 2>/dev/null; rm -rf "$WORK/data"' EXIT
for _ in $(seq 50); do grep -q "broker ready" "$WORK/broker.log" 2>/dev/null && break; sleep 0.1; done
ROUNDS="${ROUNDS:-16}"
COUNT=1171875 # 1.2 GB of 1 KiB records
mem() { awk '/VmRSS|VmHWM|RssAnon/{printf "%s %d MB  ", $1, $2/1024}' "/proc/$BROKER/status"; }
echo "# broker pid $BROKER, cache budget: $(grep -E '^managedLedgerCacheSizeMB' conf/broker.conf || echo default)"
echo "# start: $(mem)"
written=0
for round in $(seq "$ROUNDS"); do
    parts=$(( round % 2 == 1 ? 1 : 8 ))
    acks=$(( round % 4 == 0 ? -1 : 1 ))
    topic="soak-$round"
    "$BIN/mktopic" 127.0.0.1:9092 "$topic" "$parts" > /dev/null
    sleep 0.3
    pargs=(); for ((i = 0; i < parts; i++)); do pargs+=(-p "$i"); done
    p=$(timeout -s INT -k 10 120 "$BIN/rdkafka_performance" -P -t "$topic" -s 1024 -a "$acks" -c "$COUNT" \
        -b 127.0.0.1:9092 -X linger.ms=5 -X batch.size=1048576 -X batch.num.messages=1000000 -q 2>&1 \
        | grep -o '[0-9.]* MB/s' | tail -1)
    c=$(timeout -s INT -k 10 120 "$BIN/rdkafka_performance" -C -t "$topic" "${pargs[@]}" -o beginning -c "$COUNT" \
        -b 127.0.0.1:9092 -q 2>&1 | grep -o '[0-9.]* MB/s' | tail -1)
    # Deletes the topic (mktopic then recreates it empty, with one partition).
    "$BIN/mktopic" 127.0.0.1:9092 "$topic" 1 1 > /dev/null 2>&1 || true
    written=$(( written + 1200 ))
    echo "round $round: $parts partitions acks=$acks written ${written} MB total  produce ${p:-?}  consume ${c:-?}  $(mem)"
done
echo "# end: $(mem)"
