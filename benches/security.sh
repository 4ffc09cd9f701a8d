#!/usr/bin/env bash
# The cost of security: the same Kafka matrix (../shared/bench's
# kafka_bench.sh) over PLAINTEXT and over SASL_SSL (TLS 1.3, SASL PLAIN with
# a token) against ONE release broker with both listeners, alternating
# PLAINTEXT, SASL_SSL, PLAINTEXT, SASL_SSL in one run, so the ratio comes
# from neighbouring rounds; then the time to connect and authenticate
# (TCP, TLS handshake, ApiVersions, SaslHandshake, SaslAuthenticate) versus
# TCP and ApiVersions alone (benches/handshake.py).
#
#   make bench-security       # or: bash benches/security.sh
#
# Knobs: PAIRS (2) and kafka_bench.sh's own (defaults here: PARTS=1
# SIZES=1024 ACKS="1 -1" CODECS=none TARGET_SECS=10 SKIP_LATENCY=1).
# kafka_bench.sh takes no client settings, so the SASL_SSL rounds run it
# with a PERF_HOME of wrappers: rdkafka_performance gets the security
# settings added, and mktopic (which speaks PLAINTEXT only) is sent to the
# PLAINTEXT listener. Not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SHARED_BENCH:-../shared/bench}"
REAL_HOME="${PERF_HOME:-$HOME/.cache/kafka-bench}"
export PERF_HOME="$REAL_HOME"
[ -x "$REAL_HOME/bin/rdkafka_performance" ] || bash "$SHARED/setup.sh"
make build
export PARTS="${PARTS:-1}" SIZES="${SIZES:-1024}" ACKS="${ACKS:-1 -1}" CODECS="${CODECS:-none}"
export TARGET_SECS="${TARGET_SECS:-10}" SKIP_LATENCY="${SKIP_LATENCY:-1}"
WORK="$PWD/target/bench-security"
rm -rf "$WORK" && mkdir -p "$WORK"
bash tests/scripts/make-pki.sh "$WORK/pki" > /dev/null
./target/release/broker tokens create-secret-key --output "$WORK/secret.key"
TOKEN=$(./target/release/broker tokens create --secret-key "file://$WORK/secret.key" --subject bench)
PLAIN=127.0.0.1:9092 SECURE=127.0.0.1:9093

# Wrappers for the SASL_SSL rounds.
WRAP="$WORK/perf-home"
mkdir -p "$WRAP/bin" "$WRAP/results"
cat > "$WRAP/bin/rdkafka_performance" <<EOF_PERF
#!/usr/bin/env bash
exec "$REAL_HOME/bin/rdkafka_performance" "\$@" -X security.protocol=SASL_SSL -X ssl.ca.location=$WORK/pki/ca.pem \
    -X sasl.mechanism=PLAIN -X sasl.username=public/default -X sasl.password=token:$TOKEN
EOF_PERF
cat > "$WRAP/bin/mktopic" <<EOF_MK
#!/usr/bin/env bash
shift
exec "$REAL_HOME/bin/mktopic" $PLAIN "\$@"
EOF_MK
chmod +x "$WRAP/bin/rdkafka_performance" "$WRAP/bin/mktopic"

POLYPORT_dataDirectory="$WORK/data" POLYPORT_logLevel=warn \
    POLYPORT_kafkaListeners="PLAINTEXT://$PLAIN,SASL_SSL://$SECURE" \
    POLYPORT_tlsCertificateFilePath="$WORK/pki/server.pem" POLYPORT_tlsKeyFilePath="$WORK/pki/server.key" \
    POLYPORT_authenticationEnabled=true POLYPORT_authenticationProviders=token \
    POLYPORT_tokenSecretKey="file://$WORK/secret.key" \
    ./target/release/broker --config conf/broker.conf > "$WORK/broker.log" 2>&1 &
BROKER=$!
trap 'kill -TERM $BROKER 2>/dev/null; wait $BROKER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do grep -q "broker ready" "$WORK/broker.log" 2>/dev/null && break; sleep 0.1; done
# Warm-up: memory is slow at first touch on these machines.
"$REAL_HOME/bin/mktopic" $PLAIN warm-up 1 > /dev/null
timeout -s INT -k 10 120 "$REAL_HOME/bin/rdkafka_performance" -P -t warm-up -s 1024 -a 1 -c 500000 \
    -b $PLAIN -X linger.ms=5 -X batch.size=1048576 -q > /dev/null 2>&1 || true

for pair in $(seq "${PAIRS:-2}"); do
    echo "# PLAINTEXT, round $pair"
    PERF_HOME="$REAL_HOME" bash "$SHARED/kafka_bench.sh" $PLAIN "$BROKER"
    echo "# SASL_SSL (TLS 1.3, SASL PLAIN with a token), round $pair"
    PERF_HOME="$WRAP" bash "$SHARED/kafka_bench.sh" $SECURE "$BROKER"
done
echo "# connect and authenticate"
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
"$PYTHON" benches/handshake.py $PLAIN $SECURE "$WORK/pki/ca.pem" "$TOKEN"
