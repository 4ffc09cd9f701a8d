# Polyport: the two commands of README.md are `make run` and `make test`.
#
# Handlers are built in their own cargo invocation (-p): cargo unifies
# features across the packages of one build, and the host's full tokio would
# otherwise leak into the handler, hiding a `tokio::spawn` that panics at run
# time inside a plugin (docs/handlers.md).

CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
HANDLERS := kafka

.PHONY: build run test test-java conformance build-debug check-handlers bench bench-boundary bench-ledger bench-kafka bench-soak bench-groups bench-pulsar bench-peer bench-security bench-metrics bench-transactions clean

## Release build of the broker and the handlers, handlers copied into protocols/.
build:
	$(CARGO) build --release -p polyport-host
	$(CARGO) build --release -p polyport-kafka
	for h in $(HANDLERS); do install -m 0644 target/release/lib$$h.so protocols/; done

## Build everything and run the broker with conf/broker.conf.
run: build
	./target/release/broker --config conf/broker.conf

## Handlers must compile against runtime-free tokio on their own.
check-handlers:
	$(CARGO) build -p polyport-kafka

## Debug build used by the tests (broker binary and handler libraries).
build-debug: check-handlers
	$(CARGO) build --workspace --bins --lib

## Python clients for the integration tests, in a virtual environment.
$(VENV)/.installed: tests/python/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	touch $@

## Unit and integration tests (integration tests start target/debug/broker
## and drive it with real clients: kcat, the rdkafka crate, pulsar-rs,
## confluent-kafka, kafka-python, pulsar-client, and Kafka's Java clients and
## tools from Maven Central).
test: build-debug $(VENV)/.installed
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet
	$(CARGO) test --workspace --no-fail-fast
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/python
	bash tests/java/run.sh

## Apache Kafka's Java clients and command-line tools alone (Maven, JUnit 5).
test-java: build-debug
	bash tests/java/run.sh

## librdkafka's own integration tests (the CORE list of 75) against the debug
## broker: tests/conformance/README.md. Not part of `make test` (about 20 min).
conformance: build-debug
	bash tests/conformance/run.sh

## Benchmarks (not part of the tests): see docs/benchmarks.md.
bench: bench-boundary bench-ledger bench-kafka bench-groups bench-pulsar

## Kafka produce/consume with rdkafka_performance next to the machine's limits (../shared/bench).
bench-kafka:
	bash benches/kafka.sh

## The cost of TLS and SASL: the Kafka matrix over PLAINTEXT and SASL_SSL in one run, and the handshake time.
bench-security:
	bash benches/security.sh

## The cost of metrics: topic-level metrics off vs on, in one run, with /metrics scraped every second.
bench-metrics:
	bash benches/metrics.sh

## Memory soak: many times the cache budget written through one broker, RSS after each round.
bench-soak:
	bash benches/soak.sh

## Apache Kafka 4.x (from Maven Central) and the release broker side by side, one run (about 9 min).
bench-peer:
	bash benches/peer.sh

## Managed ledger: appends per sync policy vs raw disk writes, reads vs memcpy.
bench-ledger:
	$(CARGO) run --release -p polyport-benches --bin ledger

## Handler boundary cost: the Kafka request path through libkafka.so vs in-process.
bench-boundary:
	$(CARGO) build --release -p polyport-kafka
	$(CARGO) run --release -p polyport-benches --bin boundary

## Group coordinator: OffsetCommit throughput and replay (Rust), rebalance time (confluent-kafka).
bench-groups: $(VENV)/.installed
	$(CARGO) build --release -p polyport-host
	$(CARGO) build --release -p polyport-kafka
	$(CARGO) run --release -p polyport-benches --bin groups
	$(VENV)/bin/python benches/groups_rebalance.py

## Kafka transactions: transactional against idempotent produce, commit latency (confluent-kafka).
bench-transactions: $(VENV)/.installed
	$(CARGO) build --release -p polyport-host
	$(CARGO) build --release -p polyport-kafka
	$(VENV)/bin/python benches/transactions.py

## Pulsar protocol: produce/consume (pulsar-rs) and cross-protocol reads against same-protocol reads.
bench-pulsar:
	$(CARGO) build --release -p polyport-kafka
	$(CARGO) run --release -p polyport-benches --bin pulsar

clean:
	$(CARGO) clean
	rm -f protocols/*.so
