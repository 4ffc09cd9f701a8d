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
# shellcheck source=kafka_broker.sh
source "$(dirname "$0")/kafka_broker.sh" bench-soak
BIN="$PERF_HOME/bin"
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
