#!/usr/bin/env bash
# The cost of metrics: the Kafka matrix (benches/kafka_ab.sh: rdkafka_performance,
# 1 KiB records, 1 and 8 partitions, acks=1 and acks=all) against one release
# build with topic-level metrics off (A, the default: per-namespace series) and
# on (B, exposeTopicLevelMetricsInPrometheus=true), alternating rounds in one
# run, while /metrics is scraped every second (a far busier Prometheus than
# usual), so that the scrape's cost is in both.
#
#   make bench-metrics
#   PAIRS=3 make bench-metrics
#
# The counters themselves are always on (there is no switch to leave them
# out): their cost is in both sides; docs/benchmarks.md says how it was
# bounded. Not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
make build
( while sleep 1; do curl -s -o /dev/null --max-time 2 http://127.0.0.1:8080/metrics || true; done ) &
SCRAPER=$!
trap 'kill $SCRAPER 2>/dev/null || true' EXIT
ENV_B="POLYPORT_exposeTopicLevelMetricsInPrometheus=true" bash benches/kafka_ab.sh target/release target/release
