#!/usr/bin/env bash
# The cost of security: Kafka's own ProducerPerformance (Apache Kafka's
# Java client and tools, from Maven Central, as benches/peer.sh fetches
# them) over PLAINTEXT and over SASL_SSL (TLS 1.3, SASL PLAIN with a token)
# against ONE release broker with both listeners, alternating PLAINTEXT and
# SASL_SSL runs in one process's life, so each ratio comes from neighbouring
# runs; then the time to connect and authenticate (TCP, TLS handshake,
# ApiVersions, SaslHandshake, SaslAuthenticate) against TCP and ApiVersions
# alone (benches/handshake.py).
#
#   make bench-security       # or: bash benches/security.sh
#
# Knobs: PAIRS (3), COUNT (1000000 records of 1 KiB), ACKS ("1 -1").
# (../shared/bench's rdkafka_performance is built without OpenSSL, so the
# librdkafka matrix cannot run over TLS.) Not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED="${SHARED_BENCH:-../shared/bench}"
PERF_HOME="${PERF_HOME:-$HOME/.cache/kafka-bench}"
[ -x "$PERF_HOME/bin/mktopic" ] || bash "$SHARED/setup.sh"
PEER_CACHE="${PEER_CACHE:-$HOME/.cache/polyport-peer}"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KDIR="$PEER_CACHE/kafka-$KAFKA_VERSION"
KLIB="$KDIR/lib"
if [ ! -s "$KDIR/lib.ok" ]; then
    echo "# fetching Apache Kafka $KAFKA_VERSION from Maven Central into $KLIB"
    rm -rf "$KDIR" && mkdir -p "$KDIR"
    cp benches/peer/pom.xml "$KDIR/pom.xml"
    (cd "$KDIR" && timeout 900 mvn -B -ntp -Dstyle.color=never -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KLIB" > "$KDIR/mvn.log" 2>&1)
    ls "$KLIB" > "$KDIR/lib.ok"
fi
make build
COUNT="${COUNT:-1000000}" ACKS="${ACKS:-1 -1}" PAIRS="${PAIRS:-3}"
JAVA_CLIENT=(java -server -XX:+UseG1GC -Xmx512M -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$KLIB/*")
WORK="$ROOT/target/bench-security"
rm -rf "$WORK" && mkdir -p "$WORK"
bash tests/scripts/make-pki.sh "$WORK/pki" > /dev/null
./target/release/broker tokens create-secret-key --output "$WORK/secret.key"
TOKEN=$(./target/release/broker tokens create --secret-key "file://$WORK/secret.key" --subject bench)
PLAIN=127.0.0.1:9092 SECURE=127.0.0.1:9093
cat > "$WORK/sasl_ssl.properties" <<EOF_PROPS
security.protocol=SASL_SSL
ssl.truststore.type=PEM
ssl.truststore.location=$WORK/pki/ca.pem
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="public/default" password="token:$TOKEN";
EOF_PROPS
: > "$WORK/plaintext.properties"

POLYPORT_dataDirectory="$WORK/data" POLYPORT_logLevel=warn \
    POLYPORT_kafkaListeners="PLAINTEXT://$PLAIN,SASL_SSL://$SECURE" \
    POLYPORT_tlsCertificateFilePath="$WORK/pki/server.pem" POLYPORT_tlsKeyFilePath="$WORK/pki/server.key" \
    POLYPORT_authenticationEnabled=true POLYPORT_authenticationProviders=token \
    POLYPORT_tokenSecretKey="file://$WORK/secret.key" \
    ./target/release/broker --config conf/broker.conf > "$WORK/broker.log" 2>&1 &
BROKER=$!
trap 'kill -TERM $BROKER 2>/dev/null; wait $BROKER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do grep -q "broker ready" "$WORK/broker.log" 2>/dev/null && break; sleep 0.1; done
CLK=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$BROKER/stat"; }

# One ProducerPerformance run: prints "records/s MB/s brokerCPU%".
produce() { # label boot props acks topic
    "$PERF_HOME/bin/mktopic" $PLAIN "$5" 1 > /dev/null 2>&1
    local before started out
    before=$(cpu) started=$(date +%s%N)
    out=$(timeout -k 5 300 "${JAVA_CLIENT[@]}" org.apache.kafka.tools.ProducerPerformance --topic "$5" \
        --num-records "$COUNT" --record-size 1024 --throughput -1 --producer.config "$3" \
        --producer-props "bootstrap.servers=$2" "acks=${4/-1/all}" linger.ms=5 batch.size=1048576 2>&1 | \
        grep -E "^[0-9]+ records sent" | tail -1)
    local wall=$(( ($(date +%s%N) - started) / 1000000 ))
    local rate mb
    rate=$(echo "$out" | sed -E 's/^[0-9]+ records sent, ([0-9.]+) records\/sec \(([0-9.]+) MB\/sec\).*/\1/')
    mb=$(echo "$out" | sed -E 's/^[0-9]+ records sent, ([0-9.]+) records\/sec \(([0-9.]+) MB\/sec\).*/\2/')
    printf '%-10s acks=%-3s %12s records/s %8s MB/s  broker CPU %5s s\n' "$1" "${4/-1/all}" "$rate" "$mb" \
        "$(awk -v a="$before" -v b="$(cpu)" -v c="$CLK" 'BEGIN {printf "%.1f", (b - a) / c}')"
    echo "$1 ${4} $mb" >> "$WORK/results"
}

echo "# warm-up (unmeasured)"
produce warm-up $PLAIN "$WORK/plaintext.properties" 1 warm-up > /dev/null
: > "$WORK/results"
for pair in $(seq "$PAIRS"); do
    for a in $ACKS; do
        produce PLAINTEXT $PLAIN "$WORK/plaintext.properties" "$a" "plain-$pair-$a"
        produce SASL_SSL $SECURE "$WORK/sasl_ssl.properties" "$a" "tls-$pair-$a"
    done
done
echo "# SASL_SSL / PLAINTEXT, produce MB/s (mean of the runs)"
for a in $ACKS; do
    awk -v a="$a" '$2 == a && $1 == "PLAINTEXT" {p += $3; np++} $2 == a && $1 == "SASL_SSL" {t += $3; nt++}
        END {if (np && nt) printf "acks=%s: PLAINTEXT %.1f MB/s, SASL_SSL %.1f MB/s, ratio %.2f\n", a, p/np, t/nt, (t/nt)/(p/np)}' \
        "$WORK/results"
done
echo "# connect and authenticate"
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
"$PYTHON" benches/handshake.py $PLAIN $SECURE "$WORK/pki/ca.pem" "$TOKEN"
