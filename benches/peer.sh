#!/usr/bin/env bash
# Apache Kafka 4.x and Polyport side by side on this machine, in one run.
#
#   make bench-peer                   # about 9 minutes on 2 cores
#   QUICK=1 make bench-peer           # smoke run, about 2 minutes
#   COUNT=3000000 make bench-peer     # 3 GB per row: reads past Polyport's tail cache
#
# Apache Kafka (org.apache.kafka:kafka_2.13 and kafka-tools, KAFKA_VERSION,
# default 4.4.0, the newest 4.x on Maven Central) comes from Maven Central with its
# runtime dependencies through benches/peer/pom.xml, into a cache outside the
# repository ($PEER_CACHE/kafka-<version>/lib, default ~/.cache/polyport-peer).
# It runs in KRaft mode as one combined broker+controller on 127.0.0.1 with
# a 1 GB heap (-Xms1g -Xmx1g and the G1 options of kafka-server-start.sh),
# Kafka's defaults otherwise: log.flush.interval.messages is left at its
# default (Long.MAX_VALUE), so Kafka answers acks=all once the record is in
# the page cache and never fsyncs on its own. Polyport runs the release build
# (copied from $POLYPORT_DIR, default target/release, at the start, so later
# builds do not affect the run; BUILD=1 runs `make build` first) with
# conf/broker.conf, whose managedLedgerSyncPolicy=group answers acks=all after
# an fsync (acks=1 after the write, before it), changed only in its data
# directory, logLevel=warn, loopback ports and groupInitialRebalanceDelayMs=0
# (Kafka gets group.initial.rebalance.delay.ms=0 too). Both keep their data
# under the same parent directory (target/bench-peer, deleted afterwards);
# raw logs go to $PEER_CACHE/results. Every measured run starts after a
# `sync`, so neither broker pays for the other's dirty pages.
#
# The matrix, against both brokers, alternating per row (odd rounds Kafka
# first, even rounds Polyport first), 1 KiB records, no compression:
#   - produce acks=1 and acks=all on 1 and 8 partitions, and consume of the
#     acks=1 topics, with librdkafka's rdkafka_performance (../shared/bench)
#     and with Kafka's own ProducerPerformance / ConsumerPerformance;
#   - produce latency (p50/p99) at 1 000 msg/s, acks=1 and acks=all,
#     linger.ms=0, one partition, with both tools (rdkafka_performance -l:
#     per message, in µs; ProducerPerformance --throughput 1000: whole ms),
#     the first LAT_WARM records of each run left out (the client's start:
#     ProducerPerformance --warmup-records, Kafka 4.2 and later);
#   - start-up time (process start to the port open, and to the first topic
#     created), resident memory after start, at the end and at its peak
#     (VmRSS, VmHWM), and broker CPU per GB.
# plus the machine's limits in the same run (../shared/bench/limits.sh).
#
# Knobs: COUNT (records per throughput row, 1000000), ROUNDS (3; the table
# shows the median of the rounds and each round's ratio), LAT_COUNT (10000
# records at 1 000/s measured per latency row, after LAT_WARM, 2000), PARTS
# ("1 8"), ACKS ("1 -1"), TOOLS ("rdkafka java"), WARM_COUNT (500000, one
# unmeasured produce per broker first), LIMITS (1: run limits.sh first),
# PORT_BASE (29092: Kafka, +1 its controller, +2 Polyport's Kafka listener,
# +3 its Pulsar port), KAFKA_VERSION, JAVA, PEER_CACHE, POLYPORT_DIR, BUILD,
# RUN_TIMEOUT (seconds per client run). QUICK=1 sets COUNT=200000 ROUNDS=1
# LAT_COUNT=3000 LAT_WARM=1000 WARM_COUNT=100000 LIMITS=0 unless given.
# Loopback only; every client run is bounded by `timeout`, and each broker
# by BROKER_TIMEOUT (3600 s) should the script itself be killed. Not part
# of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED="${SHARED_BENCH:-../shared/bench}"
PERF_HOME="${PERF_HOME:-$HOME/.cache/kafka-bench}"
export PERF_HOME
PEER_CACHE="${PEER_CACHE:-$HOME/.cache/polyport-peer}"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
JAVA="${JAVA:-java}"
POLYPORT_DIR="${POLYPORT_DIR:-target/release}"
if [ "${QUICK:-0}" = 1 ]; then
    COUNT="${COUNT:-200000}" ROUNDS="${ROUNDS:-1}" LAT_COUNT="${LAT_COUNT:-3000}" LAT_WARM="${LAT_WARM:-1000}"
    WARM_COUNT="${WARM_COUNT:-100000}" LIMITS="${LIMITS:-0}"
else
    COUNT="${COUNT:-1000000}" ROUNDS="${ROUNDS:-3}" LAT_COUNT="${LAT_COUNT:-10000}" LAT_WARM="${LAT_WARM:-2000}"
    WARM_COUNT="${WARM_COUNT:-500000}" LIMITS="${LIMITS:-1}"
fi
PARTS="${PARTS:-1 8}"
ACKS="${ACKS:-1 -1}"
TOOLS="${TOOLS:-rdkafka java}"
SIZE=1024
LINGER_MS=5
BATCH_SIZE=1048576
FETCH_WAIT_MS=500
PORT_BASE="${PORT_BASE:-29092}"
K_PORT=$PORT_BASE
K_CTRL_PORT=$((PORT_BASE + 1))
P_PORT=$((PORT_BASE + 2))
P_PULSAR_PORT=$((PORT_BASE + 3))
K_BOOT="127.0.0.1:$K_PORT"
P_BOOT="127.0.0.1:$P_PORT"
# Every client run: at most this long (then SIGINT, and SIGKILL 10 s later).
RUN_TIMEOUT="${RUN_TIMEOUT:-$((60 + COUNT / 5000))}"
# A broker outlives the script by at most this long, whatever happens to it.
BROKER_TIMEOUT="${BROKER_TIMEOUT:-3600}"
JVM_OPTS=(-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true -Dorg.slf4j.simpleLogger.defaultLogLevel=warn)
CLK=$(getconf CLK_TCK)
T_START=$(date +%s)

WORK="$ROOT/target/bench-peer"
RESULTS="$PEER_CACHE/results/peer-$(date +%Y%m%d-%H%M%S)"
PERF="$PERF_HOME/bin/rdkafka_performance"
MKTOPIC="$PERF_HOME/bin/mktopic"
KDIR="$PEER_CACHE/kafka-$KAFKA_VERSION"
KLIB="$KDIR/lib"

K_TPID='' K_PID='' P_TPID='' P_PID=''
stop_broker() { # timeout-wrapper-pid broker-pid
    local tpid=$1 pid=$2
    [ -n "$tpid" ] || return 0
    kill -TERM "$tpid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$tpid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$tpid" 2>/dev/null || true
    if [ -n "$pid" ]; then kill -KILL "$pid" 2> /dev/null || true; fi
    wait "$tpid" 2>/dev/null || true
}
cleanup() {
    stop_broker "$K_TPID" "$K_PID"; K_TPID=''
    stop_broker "$P_TPID" "$P_PID"; P_TPID=''
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { echo "$*" | tee -a "$RESULTS/run.log"; }
ms_now() { echo $(($(date +%s%N) / 1000000)); }

# ------------------------------------------------------------------ tools
if [ ! -x "$PERF" ] || [ ! -x "$MKTOPIC" ]; then bash "$SHARED/setup.sh"; fi
command -v "$JAVA" > /dev/null || { echo "no $JAVA: Java 17 or later is needed for Apache Kafka 4.x" >&2; exit 2; }
mkdir -p "$RESULTS"
if [ ! -s "$KDIR/lib.ok" ]; then
    echo "# fetching Apache Kafka $KAFKA_VERSION from Maven Central into $KLIB"
    rm -rf "$KDIR" && mkdir -p "$KDIR"
    cp benches/peer/pom.xml "$KDIR/pom.xml"
    if ! (cd "$KDIR" && timeout 900 mvn -B -ntp -Dstyle.color=never -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KLIB" > "$KDIR/mvn.log" 2>&1); then
        grep -E '^\[ERROR\]' "$KDIR/mvn.log" | head -5 >&2 || true
        echo "Maven could not fetch Apache Kafka $KAFKA_VERSION (log: $KDIR/mvn.log)" >&2; exit 1
    fi
    ls "$KLIB" > "$KDIR/lib.ok"
fi
if [ ! -f "$KLIB/kafka_2.13-$KAFKA_VERSION.jar" ] || [ ! -f "$KLIB/kafka-tools-$KAFKA_VERSION.jar" ]; then
    echo "$KLIB lacks Kafka $KAFKA_VERSION (delete $KDIR and run again)" >&2; exit 1
fi

if [ "${BUILD:-0}" = 1 ]; then make build; fi
if [ ! -x "$POLYPORT_DIR/broker" ] || [ ! -f "$POLYPORT_DIR/libkafka.so" ]; then
    echo "no release build in $POLYPORT_DIR (broker, libkafka.so): run \`make build\`" \
        "(cargo build --release -p polyport-host -p polyport-kafka), or BUILD=1 make bench-peer" >&2
    exit 2
fi
for port in "$K_PORT" "$K_CTRL_PORT" "$P_PORT" "$P_PULSAR_PORT"; do
    if [ -n "$(ss -ltnH "sport = :$port" 2>/dev/null)" ]; then
        echo "port $port is in use: set PORT_BASE (4 ports from it)" >&2; exit 2
    fi
done
rm -rf "$WORK" && mkdir -p "$WORK/bin" "$WORK/protocols" "$WORK/kafka-data" "$WORK/polyport-data"
cp "$POLYPORT_DIR/broker" "$WORK/bin/broker"
cp "$POLYPORT_DIR/libkafka.so" "$WORK/protocols/libkafka.so"

say "# bench-peer $(date '+%Y-%m-%d %H:%M') on $(hostname): $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB;" \
    "results in $RESULTS"
say "# Apache Kafka $KAFKA_VERSION ($("$JAVA" -version 2>&1 | head -1)), Polyport from $POLYPORT_DIR" \
    "(broker built $(date -r "$POLYPORT_DIR/broker" '+%Y-%m-%d %H:%M'), libkafka.so $(date -r "$POLYPORT_DIR/libkafka.so" '+%Y-%m-%d %H:%M'))"
say "# $COUNT records of $SIZE B per throughput row, $ROUNDS round(s); latency rows $LAT_COUNT records at 1000/s;" \
    "data of both under $WORK ($(stat -f -c %T "$WORK"), $(df -h "$WORK" | awk 'NR==2{print $1}'))"
say "# durability: Kafka with its default log.flush.interval.messages (Long.MAX_VALUE: no fsync per message;"
say "#   acks=all is answered once the record is in the page cache); Polyport with conf/broker.conf's"
say "#   managedLedgerSyncPolicy=$(sed -n 's/^managedLedgerSyncPolicy=//p' conf/broker.conf) (acks=all answered after an fsync, acks=1 after the write)"

# ------------------------------------------------------------------ machine limits
if [ "$LIMITS" = 1 ]; then
    say "# limits of this machine, measured now (../shared/bench/limits.sh)"
    timeout -k 10 600 bash "$SHARED/limits.sh" "$WORK/limits" 2>&1 | grep -E "loopback|disk|memcpy|crc32c hw" \
        | tee -a "$RESULTS/run.log" "$RESULTS/limits.txt" || true
    rm -rf "$WORK/limits"
else
    say "# machine limits: not measured in this run (LIMITS=0)"
fi

# ------------------------------------------------------------------ results
# one line per measurement: round <tab> row <tab> kafka|polyport <tab> value
VALUES="$RESULTS/values.tsv"
: > "$VALUES"
ROWS=()
record() { # round row broker value
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$VALUES"
    local r
    for r in "${ROWS[@]+"${ROWS[@]}"}"; do [ "$r" = "$2" ] && return 0; done
    ROWS+=("$2")
}

rss_kb() { awk -v k="$2:" '$1==k{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
wait_ready() { # boot port -> sets W_PORT W_READY (ms since W_T0); gives up after 120 s
    local boot=$1 port=$2 deadline=$((W_T0 + 120000))
    W_PORT='' W_READY=''
    while [ "$(ms_now)" -lt "$deadline" ]; do
        if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then W_PORT=$(($(ms_now) - W_T0)); break; fi
        sleep 0.05
    done
    [ -n "$W_PORT" ] || return 1
    while [ "$(ms_now)" -lt "$deadline" ]; do
        if timeout -k 5 30 "$MKTOPIC" "$boot" peer-ready 1 > /dev/null 2>&1; then W_READY=$(($(ms_now) - W_T0)); return 0; fi
        sleep 0.05
    done
    return 1
}

# ------------------------------------------------------------------ Apache Kafka
KCONF="$WORK/kafka-server.properties"
cat > "$KCONF" << EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$K_CTRL_PORT
listeners=PLAINTEXT://127.0.0.1:$K_PORT,CONTROLLER://127.0.0.1:$K_CTRL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$K_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$WORK/kafka-data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
cp "$KCONF" "$RESULTS/"
K_CLUSTER=$(timeout -k 5 60 "$JAVA" -cp "$KLIB/*" kafka.tools.StorageTool random-uuid 2> /dev/null | tail -1)
timeout -k 5 60 "$JAVA" "${JVM_OPTS[@]}" -cp "$KLIB/*" kafka.tools.StorageTool format -t "$K_CLUSTER" -c "$KCONF" \
    > "$RESULTS/kafka-format.log" 2>&1 || { cat "$RESULTS/kafka-format.log" >&2; exit 1; }
W_T0=$(ms_now)
timeout -k 10 "$BROKER_TIMEOUT" "$JAVA" -Xms1g -Xmx1g "${JVM_OPTS[@]}" -cp "$KLIB/*" kafka.Kafka "$KCONF" \
    > "$RESULTS/kafka.log" 2>&1 &
K_TPID=$!
for _ in $(seq 50); do K_PID=$(pgrep -P "$K_TPID" || true); [ -n "$K_PID" ] && break; sleep 0.02; done
wait_ready "$K_BOOT" "$K_PORT" || { tail -20 "$RESULTS/kafka.log" >&2; echo "Apache Kafka did not start" >&2; exit 1; }
record 0 "start-up: port open, ms" kafka "$W_PORT"
record 0 "start-up: first topic created, ms" kafka "$W_READY"
say "# Apache Kafka $KAFKA_VERSION: pid $K_PID, port open after $W_PORT ms, first topic created after $W_READY ms" \
    "(storage formatted before; -Xms1g -Xmx1g, G1)"

# ------------------------------------------------------------------ Polyport
W_T0=$(ms_now)
POLYPORT_dataDirectory="$WORK/polyport-data" POLYPORT_logLevel=warn POLYPORT_protocolHandlerDirectory="$WORK/protocols" \
    POLYPORT_kafkaListeners="PLAINTEXT://$P_BOOT" POLYPORT_bindAddress=127.0.0.1 POLYPORT_brokerServicePort="$P_PULSAR_PORT" \
    POLYPORT_groupInitialRebalanceDelayMs=0 \
    timeout -k 10 "$BROKER_TIMEOUT" "$WORK/bin/broker" --config conf/broker.conf > "$RESULTS/polyport.log" 2>&1 &
P_TPID=$!
for _ in $(seq 50); do P_PID=$(pgrep -P "$P_TPID" || true); [ -n "$P_PID" ] && break; sleep 0.02; done
wait_ready "$P_BOOT" "$P_PORT" || { tail -20 "$RESULTS/polyport.log" >&2; echo "Polyport did not start" >&2; exit 1; }
record 0 "start-up: port open, ms" polyport "$W_PORT"
record 0 "start-up: first topic created, ms" polyport "$W_READY"
say "# Polyport: pid $P_PID, port open after $W_PORT ms, first topic created after $W_READY ms" \
    "(conf/broker.conf; data directory, logLevel=warn, loopback ports, groupInitialRebalanceDelayMs=0 set)"

sleep 2
record 0 "RSS after start, MB" kafka "$(($(rss_kb "$K_PID" VmRSS) / 1024))"
record 0 "RSS after start, MB" polyport "$(($(rss_kb "$P_PID" VmRSS) / 1024))"

boot_of() { if [ "$1" = kafka ]; then echo "$K_BOOT"; else echo "$P_BOOT"; fi; }
pid_of() { if [ "$1" = kafka ]; then echo "$K_PID"; else echo "$P_PID"; fi; }
alive() {
    kill -0 "$K_PID" 2> /dev/null || { tail -20 "$RESULTS/kafka.log" >&2; echo "Apache Kafka died" >&2; exit 1; }
    kill -0 "$P_PID" 2> /dev/null || { tail -20 "$RESULTS/polyport.log" >&2; echo "Polyport died" >&2; exit 1; }
}

# measure broker log cmd... : runs one client, bounded; sets M_WALL (s) and M_CPU (broker CPU s)
measure() {
    local pid log=$2 c0 c1 t0 t1 rc=0
    pid=$(pid_of "$1"); shift 2
    timeout -k 10 120 sync || true   # each run starts with no dirty pages of the one before
    c0=$(cpu_ticks "$pid"); t0=$(date +%s%N)
    timeout --foreground -s INT -k 10 "$RUN_TIMEOUT" "$@" > "$log" 2>&1 || rc=$?
    t1=$(date +%s%N); c1=$(cpu_ticks "$pid")
    M_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", (b-a)/1e9}')
    M_CPU=$(awk -v a="$c0" -v b="$c1" -v c="$CLK" 'BEGIN{printf "%.2f", (b-a)/c}')
    [ "$rc" = 0 ] || echo "  (exit $rc, see $log)"
    alive
}
mbps() { awk -v m="${1:-0}" -v s="$SIZE" 'BEGIN{printf "%.1f", m*s/1e6}'; }
# rdkafka_performance summaries -> "delivered msgs_per_s"
parse_rdk_prod() {
    grep '% [0-9]* messages produced' "$1" | tail -1 \
        | sed -E 's/.* ([0-9]+) delivered \(offset -?[0-9]+, [0-9]+ failed\) in [0-9]+ms: ([0-9]+) msgs\/s.*/\1 \2/' || true
}
parse_rdk_cons() {
    grep '% [0-9]* messages (' "$1" | tail -1 \
        | sed -E 's/^% ([0-9]+) messages \([0-9]+ bytes\) consumed in [0-9]+ms: ([0-9]+) msgs\/s.*/\1 \2/' || true
}
# ProducerPerformance's summary (with "steady": the one without the warm-up records)
#   -> "records records_per_s avg_ms p50 p95 p99 p999"
parse_java_prod() { # file [steady]
    local what='records sent'
    [ "${2:-}" = steady ] && what='steady state records sent'
    grep -E "^[0-9]+ $what, .* 99.9th" "$1" | tail -1 | sed -E \
        's/^([0-9]+) [a-z ]+, ([0-9.]+) records\/sec .*, ([0-9.]+) ms avg latency, [0-9.]+ ms max latency, ([0-9]+) ms 50th, ([0-9]+) ms 95th, ([0-9]+) ms 99th, ([0-9]+) ms 99.9th.*/\1 \2 \3 \4 \5 \6 \7/' || true
}
# ConsumerPerformance's CSV line -> "records fetch_records_per_s"
parse_java_cons() {
    grep -E '^[0-9]{4}-[0-9]{2}-[0-9]{2} ' "$1" | tail -1 | awk -F', *' '{print $5, $10}' || true
}
pct() { # file of µs -> "p50 p99" in ms
    sort -n "$1" | awk '{a[NR]=$1} END{ if(NR==0){print "- -"; exit}
        i=int(NR*0.5); if(i<1)i=1; j=int(NR*0.99); if(j<1)j=1; printf "%.2f %.2f\n", a[i]/1000, a[j]/1000 }'
}
# Kafka's perf tools, as kafka-producer-perf-test.sh and kafka-consumer-perf-test.sh start them (512 MB heap)
JAVA_CLIENT=("$JAVA" -Xmx512m "${JVM_OPTS[@]}" -cp "$KLIB/*")
# Options that changed within 4.x: --warmup-records (4.2), --num-records for the consumer (--messages before)
J_WARMUP=() J_STEADY='' J_CONS_COUNT=--messages
help=$(timeout -k 5 60 "${JAVA_CLIENT[@]}" org.apache.kafka.tools.ProducerPerformance --help 2>&1 || true)
if grep -q -e --warmup-records <<< "$help"; then J_WARMUP=(--warmup-records "$LAT_WARM") J_STEADY=steady; fi
help=$(timeout -k 5 60 "${JAVA_CLIENT[@]}" org.apache.kafka.tools.ConsumerPerformance --help 2>&1 || true)
if grep -q -e --num-records <<< "$help"; then J_CONS_COUNT=--num-records; fi

# produce/consume rows: tool broker round partitions acks
TOPIC_N=0
# broker CPU seconds and GB moved, per "PROD kafka", "CONS polyport", ...: reset every round
declare -A CPU_S=() GB=()
add_cpu() { # kind broker cpu_s records
    local k="$1 $2"
    CPU_S[$k]=$(awk -v a="${CPU_S[$k]:-0}" -v b="$3" 'BEGIN{print a+b}')
    GB[$k]=$(awk -v a="${GB[$k]:-0}" -v n="$4" -v s="$SIZE" 'BEGIN{print a+n*s/1e9}')
}
cpu_per_gb() { awk -v c="${CPU_S[$1]:-0}" -v g="${GB[$1]:-0}" 'BEGIN{v = (g > 0) ? c / g : 0; printf "%.2f", v}'; }
row() {
    local tool=$1 b=$2 round=$3 p=$4 a=$5 boot topic log name n rate d i
    local pargs=()
    boot=$(boot_of "$b")
    TOPIC_N=$((TOPIC_N + 1))
    topic="peer-$TOPIC_N-$tool-p$p-a${a/-1/all}"
    timeout -k 5 60 "$MKTOPIC" "$boot" "$topic" "$p" > /dev/null 2>&1 || echo "  (mktopic $topic failed on $b)"
    sleep 0.5
    log="$RESULTS/r$round-$b-$topic"
    name="produce p$p acks=${a/-1/all} $tool, MB/s"
    if [ "$tool" = rdkafka ]; then
        measure "$b" "$log.produce" "$PERF" -P -t "$topic" -s "$SIZE" -a "$a" -c "$COUNT" -b "$boot" \
            -X "linger.ms=$LINGER_MS" -X "batch.size=$BATCH_SIZE" -X batch.num.messages=1000000 -q
        read -r n rate < <(parse_rdk_prod "$log.produce"; echo) || true
    else
        measure "$b" "$log.produce" "${JAVA_CLIENT[@]}" org.apache.kafka.tools.ProducerPerformance --topic "$topic" \
            --num-records "$COUNT" --record-size "$SIZE" --throughput -1 --producer-props "bootstrap.servers=$boot" \
            "acks=${a/-1/all}" "linger.ms=$LINGER_MS" "batch.size=$BATCH_SIZE"
        read -r n rate _ < <(parse_java_prod "$log.produce"; echo) || true
    fi
    n=${n:-0}; rate=${rate:-0}
    [ "$n" = "$COUNT" ] || { echo "  $b: produced ${n}/$COUNT (see $log.produce)"; rate=0; }
    record "$round" "$name" "$b" "$(mbps "$rate")"
    add_cpu PROD "$b" "$M_CPU" "$n"
    printf '  %-9s %-40s %8s MB/s  %7s s  broker CPU %6s s\n' "$b" "${name%, MB/s}" "$(mbps "$rate")" "$M_WALL" "$M_CPU" \
        | tee -a "$RESULTS/run.log"
    if [ "$a" = 1 ] && [ "$n" -gt 0 ]; then
        name="consume p$p $tool, MB/s"
        d=$n
        if [ "$tool" = rdkafka ]; then
            for ((i = 0; i < p; i++)); do pargs+=(-p "$i"); done
            measure "$b" "$log.consume" "$PERF" -C -t "$topic" "${pargs[@]}" -o beginning -c "$d" -b "$boot" \
                -X "fetch.wait.max.ms=$FETCH_WAIT_MS" -q
            read -r n rate < <(parse_rdk_cons "$log.consume"; echo) || true
        else
            measure "$b" "$log.consume" "${JAVA_CLIENT[@]}" org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$boot" \
                --topic "$topic" "$J_CONS_COUNT" "$d" --group "peer-$TOPIC_N" --timeout 20000
            read -r n rate < <(parse_java_cons "$log.consume"; echo) || true
            rate=${rate%.*}
        fi
        n=${n:-0}; rate=${rate:-0}
        [ "$n" -ge "$d" ] || { echo "  $b: consumed ${n}/$d (see $log.consume)"; rate=0; }
        record "$round" "$name" "$b" "$(mbps "$rate")"
        add_cpu CONS "$b" "$M_CPU" "$n"
        printf '  %-9s %-40s %8s MB/s  %7s s  broker CPU %6s s\n' "$b" "${name%, MB/s}" "$(mbps "$rate")" "$M_WALL" "$M_CPU" \
            | tee -a "$RESULTS/run.log"
    fi
    # delete the topic (mktopic deletes, then creates it again empty with 1 partition)
    timeout -k 5 60 "$MKTOPIC" "$boot" "$topic" 1 1 > /dev/null 2>&1 || true
}

# latency rows: tool broker acks
lat_row() {
    local tool=$1 b=$2 a=$3 boot topic log p50 p99
    boot=$(boot_of "$b")
    TOPIC_N=$((TOPIC_N + 1))
    topic="peer-$TOPIC_N-lat-$tool-a${a/-1/all}"
    timeout -k 5 60 "$MKTOPIC" "$boot" "$topic" 1 > /dev/null 2>&1 || echo "  (mktopic $topic failed on $b)"
    sleep 0.5
    log="$RESULTS/lat-$b-$topic"
    if [ "$tool" = rdkafka ]; then
        measure "$b" "$log.log" "$PERF" -P -t "$topic" -p 0 -s "$SIZE" -a "$a" -l -A "$log.us" -r 1000 \
            -c $((LAT_WARM + LAT_COUNT)) -b "$boot" -X linger.ms=0 -q
        tail -n +$((LAT_WARM + 1)) "$log.us" > "$log.steady.us" 2> /dev/null || true
        read -r p50 p99 < <(pct "$log.steady.us")
    else
        measure "$b" "$log.log" "${JAVA_CLIENT[@]}" org.apache.kafka.tools.ProducerPerformance --topic "$topic" \
            --num-records $((LAT_WARM + LAT_COUNT)) "${J_WARMUP[@]+"${J_WARMUP[@]}"}" --record-size "$SIZE" \
            --throughput 1000 --producer-props "bootstrap.servers=$boot" "acks=${a/-1/all}" linger.ms=0
        read -r _ _ _ p50 _ p99 _ < <(parse_java_prod "$log.log" "$J_STEADY"; echo) || true
    fi
    record L "latency acks=${a/-1/all} $tool p50, ms" "$b" "${p50:--}"
    record L "latency acks=${a/-1/all} $tool p99, ms" "$b" "${p99:--}"
    printf '  %-9s latency acks=%-3s %-8s p50 %6s ms  p99 %6s ms\n' "$b" "${a/-1/all}" "$tool" "${p50:--}" "${p99:--}" \
        | tee -a "$RESULTS/run.log"
    timeout -k 5 60 "$MKTOPIC" "$boot" "$topic" 1 1 > /dev/null 2>&1 || true
}

# ------------------------------------------------------------------ warm-up
say "# warm-up: $WARM_COUNT records, acks=1, one partition, per broker (not measured)"
for b in kafka polyport; do
    boot=$(boot_of "$b")
    timeout -k 5 60 "$MKTOPIC" "$boot" peer-warm-up 1 > /dev/null 2>&1 || true
    timeout -s INT -k 10 "$RUN_TIMEOUT" "$PERF" -P -t peer-warm-up -s "$SIZE" -a 1 -c "$WARM_COUNT" -b "$boot" \
        -X "linger.ms=$LINGER_MS" -X "batch.size=$BATCH_SIZE" -q > /dev/null 2>&1 || true
    timeout -k 5 60 "$MKTOPIC" "$boot" peer-warm-up 1 1 > /dev/null 2>&1 || true
done
alive

# ------------------------------------------------------------------ throughput rounds
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="kafka polyport"; else order="polyport kafka"; fi
    say "# round $round of $ROUNDS ($order first in each row)"
    for tool in $TOOLS; do
        for p in $PARTS; do
            for a in $ACKS; do
                for b in $order; do row "$tool" "$b" "$round" "$p" "$a"; done
            done
        done
    done
    # broker CPU per GB, this round
    for b in kafka polyport; do
        record "$round" "broker CPU per GB produced, s" "$b" "$(cpu_per_gb "PROD $b")"
        record "$round" "broker CPU per GB consumed, s" "$b" "$(cpu_per_gb "CONS $b")"
    done
    CPU_S=() GB=()
done

# ------------------------------------------------------------------ latency
say "# produce latency at 1000 msg/s, $LAT_COUNT records of $SIZE B after $LAT_WARM left out, one partition, linger.ms=0"
[ -n "$J_STEADY" ] || say "#   (this ProducerPerformance has no --warmup-records: its percentiles include its start)"
for a in $ACKS; do
    for tool in $TOOLS; do
        for b in kafka polyport; do lat_row "$tool" "$b" "$a"; done
    done
done

# ------------------------------------------------------------------ memory
sleep 2
for b in kafka polyport; do
    pid=$(pid_of "$b")
    record E "RSS at the end, MB" "$b" "$(($(rss_kb "$pid" VmRSS) / 1024))"
    record E "peak RSS (VmHWM), MB" "$b" "$(($(rss_kb "$pid" VmHWM) / 1024))"
    say "# $b memory at the end: $(grep -E 'VmHWM|VmRSS|RssAnon|RssFile' "/proc/$pid/status" | tr -s ' \n' ' ')"
done

# ------------------------------------------------------------------ table
{
    echo
    echo "Apache Kafka $KAFKA_VERSION and Polyport side by side, $(date '+%Y-%m-%d'), $COUNT records of $SIZE B per throughput row;"
    echo "throughput and CPU rows: median of $ROUNDS round(s) (MB = 10^6 bytes of record values); last column: Polyport/Kafka in each round"
    echo
    echo "| row | Apache Kafka | Polyport | Polyport/Kafka | each round |"
    echo "|---|---:|---:|---:|---|"
    for r in "${ROWS[@]}"; do
        awk -F'\t' -v row="$r" -v rounds="$ROUNDS" '
            function ratio(a, b) { return (a != "" && b != "" && a != "-" && b != "-" && a + 0 > 0) ? sprintf("%.2f", b / a) : "-" }
            function median(b,    n, i, j, t, x) {
                n = 0
                for (i = 1; i <= rounds; i++) if ((i, b) in v && v[i, b] != "-") x[++n] = v[i, b] + 0
                if (n == 0) return "-"
                for (i = 2; i <= n; i++) for (j = i; j > 1 && x[j - 1] > x[j]; j--) { t = x[j]; x[j] = x[j - 1]; x[j - 1] = t }
                return sprintf(row ~ /MB\/s/ ? "%.1f" : "%.2f", (n % 2) ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2)
            }
            $2 == row { v[$1, $3] = $4; if ($1 == "0" || $1 == "L" || $1 == "E") once = $1 }
            END {
                all = ""
                if (once != "") { k = v[once, "kafka"]; p = v[once, "polyport"] }
                else {
                    k = median("kafka"); p = median("polyport")
                    for (i = 1; i <= rounds; i++) all = all (i > 1 ? ", " : "") ratio(v[i, "kafka"], v[i, "polyport"])
                }
                printf "| %s | %s | %s | %s | %s |\n", row, k, p, ratio(k, p), all
            }' "$VALUES"
    done
    echo
    echo "total run time: $(( $(date +%s) - T_START )) s; raw logs: $RESULTS"
} | tee "$RESULTS/table.md"
