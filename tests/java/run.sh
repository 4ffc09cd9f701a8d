#!/usr/bin/env bash
# Apache Kafka's Java clients and command-line tools against the real broker
# (target/debug/broker and target/debug/libkafka.so, or $CARGO_TARGET_DIR/debug,
# or -Dpolyport.targetDir=DIR). Extra arguments go to Maven, e.g.
#   tests/java/run.sh -Dtest=CliToolsTest
# Maven runs offline when everything is already in ~/.m2, and online (once)
# when something is missing. Prints the per-class and Surefire summary lines,
# and the errors; the full Maven log is kept in target/mvn.log.
set -uo pipefail
cd "$(dirname "$0")"

mvn_cmd=${MVN:-mvn}
mkdir -p target
log=target/mvn.log
goals=(-B -ntp -Dstyle.color=never test "$@")

run() {
    "$mvn_cmd" "$@" "${goals[@]}" >"$log" 2>&1
}

if run -o; then
    status=0
else
    status=$?
    if grep -q "in offline mode" "$log"; then
        echo "java tests: fetching dependencies from Maven Central"
        run
        status=$?
    fi
fi

grep -E '^\[(INFO|WARNING|ERROR)\] Tests run:|^\[ERROR\]|BUILD (SUCCESS|FAILURE)' "$log" \
    | grep -vE '^\[ERROR\] *$|^\[ERROR\] -> \[Help|^\[ERROR\] (To see|Re-run|For more|\[Help|After correcting)'
if [ "$status" -ne 0 ]; then
    echo "java tests failed (exit $status): full log tests/java/$log," \
        "test output tests/java/kafka-tests/target/surefire-reports," \
        "broker logs tests/java/kafka-tests/target/broker-logs"
fi
exit "$status"
