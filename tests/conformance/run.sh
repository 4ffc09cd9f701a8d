#!/usr/bin/env bash
# Conformance run: librdkafka's own integration test suite against Polyport.
#
#   tests/conformance/run.sh [NNNN ...]     (or `make conformance`)
#
# 1. Finds librdkafka's sources inside the rdkafka-sys crate that Cargo.lock
#    pins (the cargo registry; `cargo fetch` downloads it if it is missing),
#    copies them to $CONFORMANCE_HOME and builds librdkafka and its test
#    runner (tests/test-runner) once. Later runs reuse the build.
# 2. Starts target/<profile>/broker with libkafka.so on free loopback ports,
#    configured as librdkafka's "default" test scenario expects (topics
#    auto-created with 4 partitions).
# 3. Runs each test of core.txt on its own (`TESTS=NNNN test-runner -E -L -p1`,
#    full mode) under a timeout, prints one line per test and closes with
#    `N passed, N failed`. Tests listed in expected-failures.txt that fail are
#    XFAIL and do not fail the run; the exit code is 1 if any other test failed.
#
# Environment (all optional):
#   BROKER_PROFILE=debug|release     which build of the broker to test (debug)
#   CARGO_TARGET_DIR                 where the broker was built (./target)
#   CONFORMANCE_HOME                 build cache (~/.cache/polyport-conformance)
#   CONFORMANCE_LOG_DIR              where logs go ($CONFORMANCE_HOME/runs/<time>)
#   CONFORMANCE_TEST_TIMEOUT         seconds per test before it is killed (300)
#   CONFORMANCE_RUN_TIMEOUT          seconds for all the tests (3600); tests not
#                                    started by then are reported as failed
#   CONFORMANCE_JOBS                 make -j for the librdkafka build (2)
#   CONFORMANCE_TIMEOUT_MULTIPLIER   test.timeout.multiplier of the suite (1)
#   CONFORMANCE_LOG_LEVEL            broker logLevel (info)
#   CONFORMANCE_QUICK=1              the suite's quick mode (-Q): faster, but
#                                    some tests then skip parts of themselves
#   CONFORMANCE_BUILD_ONLY=1         build librdkafka's test runner and stop
#   TEST_KAFKA_VERSION               broker version the suite assumes
#                                    (unset: librdkafka's default, 2.4.0)
#   TEST_DEBUG                       librdkafka debug contexts, e.g. protocol
# Arguments: test numbers to run instead of the whole of core.txt.
set -euo pipefail

# The whole script is one block: bash parses it before running it, so editing
# this file during a run does not disturb the run.
{
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CORE_LIST="$HERE/core.txt"
XFAIL_LIST="$HERE/expected-failures.txt"

PROFILE="${BROKER_PROFILE:-debug}"
case "$PROFILE" in debug | release) ;; *) echo "BROKER_PROFILE must be debug or release" >&2; exit 2 ;; esac
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
TARGET="$TARGET/$PROFILE"
CONF_HOME="${CONFORMANCE_HOME:-$HOME/.cache/polyport-conformance}"
TEST_TIMEOUT="${CONFORMANCE_TEST_TIMEOUT:-300}"
RUN_TIMEOUT="${CONFORMANCE_RUN_TIMEOUT:-3600}"
JOBS="${CONFORMANCE_JOBS:-2}"
MULTIPLIER="${CONFORMANCE_TIMEOUT_MULTIPLIER:-1}"
LOG_LEVEL="${CONFORMANCE_LOG_LEVEL:-info}"
QUICK="${CONFORMANCE_QUICK:-0}"

say() { echo "conformance: $*" >&2; }
die() { say "$*"; exit 2; }
now() { date +%s; }

T_START=$(now)

# ---------------------------------------------------------------------------
# Build prerequisites (Debian packages), installed only when missing.
# ---------------------------------------------------------------------------
ensure_build_deps() {
    local pkgs=(build-essential pkg-config python3 zlib1g-dev libzstd-dev liblz4-dev rapidjson-dev coreutils)
    local missing=() p
    for p in "${pkgs[@]}"; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing build dependencies: ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "missing packages ${missing[*]} and not root: install them first"
        sudo=(sudo)
    fi
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------------------
# librdkafka's sources: the rdkafka-sys crate of Cargo.lock, in the registry.
# ---------------------------------------------------------------------------
rdkafka_sys_version() {
    awk '/^name = "rdkafka-sys"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

find_rdkafka_src() {
    local ver="$1" d
    for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"rdkafka-sys-$ver"/librdkafka; do
        [ -f "$d/tests/test.c" ] && { echo "$d"; return 0; }
    done
    return 1
}

RDK_VER="$(rdkafka_sys_version)"
[ -n "$RDK_VER" ] || die "no rdkafka-sys package in $ROOT/Cargo.lock"
BUILD="$CONF_HOME/librdkafka-$RDK_VER"
RUNNER="$BUILD/tests/test-runner"

# Changing how librdkafka is configured (or its build dependencies) must
# change BUILD_ID, so that cached builds are redone.
CONFIGURE_FLAGS=(--disable-ssl --disable-gssapi --disable-sasl --disable-curl)
BUILD_ID="2 ${CONFIGURE_FLAGS[*]} rapidjson"

build_librdkafka() {
    if [ -x "$RUNNER" ] && [ "$(cat "$BUILD/.polyport-built" 2>/dev/null)" = "$BUILD_ID" ]; then
        say "librdkafka $RDK_VER and its test runner: cached in $BUILD"
        return 0
    fi
    ensure_build_deps
    local src
    if ! src="$(find_rdkafka_src "$RDK_VER")"; then
        say "rdkafka-sys $RDK_VER is not in the cargo registry: cargo fetch (download only)"
        cargo fetch --manifest-path "$ROOT/Cargo.toml" >&2
        src="$(find_rdkafka_src "$RDK_VER")" || die "rdkafka-sys $RDK_VER still missing after cargo fetch"
    fi
    local t0
    t0=$(now)
    say "building librdkafka $RDK_VER and its test runner in $BUILD (make -j$JOBS, a few minutes)"
    rm -rf "$BUILD"
    mkdir -p "$CONF_HOME"
    cp -r "$src" "$BUILD"
    chmod -R u+w "$BUILD"
    local blog="$BUILD/polyport-build.log"
    (
        cd "$BUILD"
        # No SSL/SASL/GSSAPI/curl: the core list needs a PLAINTEXT broker
        # only. RapidJSON (found by configure) lets the tests parse statistics.
        nice -n 10 ./configure "${CONFIGURE_FLAGS[@]}"
        nice -n 10 make -j"$JOBS" libs
        nice -n 10 make -j"$JOBS" -C tests build
    ) >"$blog" 2>&1 || { tail -n 40 "$blog" >&2; die "librdkafka build failed (log: $blog)"; }
    [ -x "$RUNNER" ] || die "no $RUNNER after the build (log: $blog)"
    echo "$BUILD_ID" >"$BUILD/.polyport-built"
    say "librdkafka built in $(($(now) - t0)) s"
}

build_librdkafka
if [ "${CONFORMANCE_BUILD_ONLY:-0}" = 1 ]; then
    exit 0
fi

# ---------------------------------------------------------------------------
# The broker.
# ---------------------------------------------------------------------------
BROKER_BIN="$TARGET/broker"
HANDLER_LIB="$TARGET/libkafka.so"
[ -x "$BROKER_BIN" ] || die "$BROKER_BIN is missing: build it first (make build-debug, or make build with BROKER_PROFILE=release)"
[ -f "$HANDLER_LIB" ] || die "$HANDLER_LIB is missing: build it first (make build-debug)"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

if [ -z "${CONFORMANCE_LOG_DIR:-}" ]; then
    # Keep the logs of the last 10 runs.
    mkdir -p "$CONF_HOME/runs"
    ls -1d "$CONF_HOME"/runs/*/ 2>/dev/null | sort | head -n -9 | while read -r old; do rm -rf "$old"; done
fi
LOGS="${CONFORMANCE_LOG_DIR:-$CONF_HOME/runs/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$LOGS"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/polyport-conformance.XXXXXX")"
mkdir -p "$WORK/protocols"
# Copies, so that a rebuild during the run does not change what is tested.
cp "$BROKER_BIN" "$WORK/broker"
cp "$HANDLER_LIB" "$WORK/protocols/libkafka.so"
KAFKA_PORT=$(free_port)
PULSAR_PORT=$(free_port)
while [ "$PULSAR_PORT" = "$KAFKA_PORT" ]; do PULSAR_PORT=$(free_port); done
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
BROKER_LOG="$LOGS/broker.log"

# librdkafka's "default" scenario (tests/scenarios/default.json): topics are
# auto-created, with 4 partitions. Message size as Kafka's default
# message.max.bytes (1048588). The first rebalance of a group is delayed as
# in Kafka (groupInitialRebalanceDelayMs, 3000 ms by default): tests such as
# 0102 expect members that join together to be assigned in one generation.
cat >"$WORK/broker.conf" <<EOF
messagingProtocols=kafka
protocolHandlerDirectory=$WORK/protocols
dataDirectory=$WORK/data
bindAddress=127.0.0.1
advertisedAddress=127.0.0.1
kafkaListeners=PLAINTEXT://$BOOTSTRAP
brokerServicePort=$PULSAR_PORT
webServicePort=0
brokerShutdownTimeoutMs=3000
logLevel=$LOG_LEVEL
allowAutoTopicCreation=true
allowAutoTopicCreationType=partitioned
defaultNumPartitions=4
maxMessageSize=1048588
kafkaAcceptAnyReplicationFactor=true
EOF
cp "$WORK/broker.conf" "$LOGS/broker.conf"

BROKER_PID=""
start_broker() {
    "$WORK/broker" --config "$WORK/broker.conf" >>"$BROKER_LOG" 2>&1 </dev/null &
    BROKER_PID=$!
    for _ in $(seq 1 300); do
        if grep -q "broker ready" "$BROKER_LOG" 2>/dev/null && [ "$(grep -c 'broker ready' "$BROKER_LOG")" -ge "$BROKER_STARTS" ]; then
            return 0
        fi
        kill -0 "$BROKER_PID" 2>/dev/null || { tail -n 30 "$BROKER_LOG" >&2; die "the broker exited at start-up (log: $BROKER_LOG)"; }
        sleep 0.1
    done
    tail -n 30 "$BROKER_LOG" >&2
    die "the broker was not ready after 30 s (log: $BROKER_LOG)"
}

stop_broker() {
    [ -n "$BROKER_PID" ] || return 0
    if kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        for _ in $(seq 1 150); do
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$BROKER_PID" 2>/dev/null || true
    fi
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
}

cleanup() {
    stop_broker
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BROKER_STARTS=1
start_broker
say "broker $BROKER_BIN (built $(date -r "$BROKER_BIN" '+%F %T')) on $BOOTSTRAP (log: $BROKER_LOG)"

# The suite's configuration file (test.conf, see tests/test.conf.example).
cat >"$LOGS/test.conf" <<EOF
metadata.broker.list=$BOOTSTRAP
test.timeout.multiplier=$MULTIPLIER
EOF

# ---------------------------------------------------------------------------
# The tests.
# ---------------------------------------------------------------------------
declare -A NAME XFAIL_REASON
ORDER=()
while read -r num name _; do
    case "$num" in '' | \#*) continue ;; esac
    NAME[$num]="$name"
    ORDER+=("$num")
done <"$CORE_LIST"
while IFS= read -r line; do
    case "$line" in '' | \#*) continue ;; esac
    XFAIL_REASON[${line%% *}]="${line#* }"
done <"$XFAIL_LIST"

if [ $# -gt 0 ]; then
    ORDER=()
    for num in "$@"; do
        [[ "$num" =~ ^[0-9]{4}$ ]] || die "not a test number: $num"
        # A test outside core.txt may be run too (to look at it).
        [ -n "${NAME[$num]:-}" ] || NAME[$num]="(not in core.txt)"
        ORDER+=("$num")
    done
fi

strip_ansi() { sed -e 's/\x1b\[[0-9;]*m//g'; }

# The first failure reason the suite printed: the line after
# `### Test "..." failed at file:line:function() at date: ###`.
failure_reason() {
    awk '/^### Test ".*" failed at / && !found { getline r; print substr(r, 1, 240); found = 1 }' "$1"
}

# -E: no socket-emulation (sockem) tests, -L: no broker-less (mock cluster)
# variants, -p1: one test at a time; -Q: quick mode (fewer messages,
# shorter waits; some tests skip parts or all of themselves).
RUNNER_ARGS=(-E -L -p1)
[ "$QUICK" = 1 ] && RUNNER_ARGS+=(-Q)

passed=0
failed=0
xfailed=0
xpassed=0
skipped=0
FAILED_TESTS=()
say "running ${#ORDER[@]} tests (logs: $LOGS)"

RUN_DEADLINE=$(($(now) + RUN_TIMEOUT))
for num in "${ORDER[@]}"; do
    name="${NAME[$num]}"
    log="$LOGS/$num.log"
    if [ "$(now)" -ge "$RUN_DEADLINE" ]; then
        failed=$((failed + 1))
        FAILED_TESTS+=("$num")
        echo "FAIL $num $name (not run: the run's time limit, ${RUN_TIMEOUT} s, was reached)"
        continue
    fi
    blog_start=$(stat -c %s "$BROKER_LOG")
    t0=$(now)
    set +e
    (
        cd "$BUILD/tests"
        env -u CI \
            LD_LIBRARY_PATH="$BUILD/src:$BUILD/src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
            RDKAFKA_TEST_CONF="$LOGS/test.conf" RDKAFKA_GITVER="rdkafka-sys-$RDK_VER" \
            TESTS="$num" TEST_MODE=bare \
            timeout -k 10 "$TEST_TIMEOUT" ./test-runner "${RUNNER_ARGS[@]}" || exit $?
    ) >"$log" 2>&1
    rc=$?
    set -e
    secs=$(($(now) - t0))
    # The suite leaves a (usually empty) statistics file per test behind.
    rm -f "$BUILD"/tests/stats_*.json
    # Plain text logs: without the suite's colour codes.
    strip_ansi <"$log" >"$log.txt" && mv "$log.txt" "$log"
    # The broker's log lines written while this test ran.
    tail -c +$((blog_start + 1)) "$BROKER_LOG" >"$LOGS/$num.broker.log" 2>/dev/null || true

    reason=""
    broker_died=0
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        broker_died=1
        code=0
        wait "$BROKER_PID" 2>/dev/null || code=$?
        reason="the broker exited (code $code) during the test; restarted it"
        BROKER_STARTS=$((BROKER_STARTS + 1))
        start_broker
    fi
    if [ $broker_died = 0 ] && [ $rc = 0 ]; then
        status=PASS
        # A test that skipped itself as a whole (its summary rows show no
        # PASSED; local variants are filtered out by -L) is a SKIP.
        if ! grep -Eq "^\| +${num}_[^ ]+ +\| +PASSED " "$log"; then
            status=SKIP
            reason="$(awk -v pat="^[|] +${num}_[^ ]+ +[|] +SKIPPED " '$0 ~ pat && !/Filtered due to negative test flags/ && !found {
                sub(/^.*s [|][[:space:]]*/, ""); print substr($0, 1, 200); found = 1 }' "$log")"
        fi
    else
        status=FAIL
        if [ -z "$reason" ]; then
            if [ $rc = 124 ] || { [ $rc = 137 ] && [ "$secs" -ge "$TEST_TIMEOUT" ]; }; then
                reason="timed out after ${TEST_TIMEOUT} s"
            else
                reason="$(failure_reason "$log")"
                [ -n "$reason" ] || reason="exit code $rc: $(awk 'NF { last = $0 } END { print substr(last, 1, 200) }' "$log")"
            fi
        fi
    fi

    if [ -n "${XFAIL_REASON[$num]:-}" ]; then
        case "$status" in
        FAIL) status=XFAIL ;;
        PASS) status=XPASS ;;
        esac
    fi
    case "$status" in
    PASS) passed=$((passed + 1)); echo "PASS $num $name (${secs}s)" ;;
    SKIP) skipped=$((skipped + 1)); echo "SKIP $num $name ($reason)" ;;
    XPASS) xpassed=$((xpassed + 1)); passed=$((passed + 1))
        echo "XPASS $num $name (${secs}s; listed in expected-failures.txt: remove it)" ;;
    XFAIL) xfailed=$((xfailed + 1)); echo "XFAIL $num $name (${XFAIL_REASON[$num]%%:*}; ${secs}s: $reason)" ;;
    FAIL) failed=$((failed + 1)); FAILED_TESTS+=("$num"); echo "FAIL $num $name (${secs}s: $reason)" ;;
    esac
done

stop_broker
total=$(($(now) - T_START))
[ ${#FAILED_TESTS[@]} -eq 0 ] || say "unexpected failures: ${FAILED_TESTS[*]} (logs: $LOGS/NNNN.log and NNNN.broker.log)"
echo "$xfailed xfailed, $xpassed xpassed, $skipped skipped; ${total}s; logs in $LOGS"
echo "$passed passed, $failed failed"
if [ "$failed" -eq 0 ]; then exit 0; fi
exit 1
}
