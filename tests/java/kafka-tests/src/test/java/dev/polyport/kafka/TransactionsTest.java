package dev.polyport.kafka;

import static dev.polyport.kafka.Clients.TIMEOUT_S;
import static dev.polyport.kafka.Clients.map;
import static dev.polyport.kafka.Clients.pollFor;
import static dev.polyport.kafka.Clients.unique;
import static dev.polyport.kafka.Clients.waitUntil;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListTransactionsOptions;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Kafka transactions with the Java clients (the classic protocol: the broker
 * finalizes no transaction.version, so the producer adds partitions with
 * AddPartitionsToTxn and ends with EndTxn): a transactional producer's
 * committed and aborted transactions as read_committed and read_uncommitted
 * consumers see them (each marker taking one offset); zombie fencing of a
 * producer by a second one with the same transactional.id, whose
 * InitProducerId aborts the first one's open transaction;
 * consume-transform-produce with sendOffsetsToTransaction on a subscribed
 * consumer, the offsets committed with the transaction only (not visible to
 * Admin before, held back from a require_stable OffsetFetch meanwhile, dropped
 * by an abort); and Admin's describeTransactions and listTransactions.
 */
class TransactionsTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension("groupInitialRebalanceDelayMs=0");

    private static final String COMMITTED = "read_committed";
    private static final String UNCOMMITTED = "read_uncommitted";

    private static Admin admin;

    @BeforeAll
    static void setUp() {
        admin = Clients.admin(BROKER.bootstrap());
    }

    @AfterAll
    static void tearDown() {
        if (admin != null) {
            admin.close();
        }
    }

    /** A transactional producer, initialised (InitProducerId done). */
    private static KafkaProducer<String, String> transactional(String transactionalId) {
        KafkaProducer<String, String> p = Clients.producer(BROKER.bootstrap(), map(
                ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId,
                ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 30_000,
                ProducerConfig.LINGER_MS_CONFIG, 5));
        p.initTransactions();
        return p;
    }

    private static List<TopicPartition> partitions(String topic, int n) {
        return IntStream.range(0, n).mapToObj(p -> new TopicPartition(topic, p)).collect(Collectors.toList());
    }

    /**
     * Everything from the beginning of the topic with the given isolation
     * level (manual assignment): polls until `expected` records came, then
     * half a second more, so that extra records would show.
     */
    private static List<ConsumerRecord<String, String>> readAll(String topic, int partitionCount, int expected,
            String isolation) {
        try (KafkaConsumer<String, String> c = Clients.consumer(BROKER.bootstrap(),
                map(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation))) {
            List<TopicPartition> tps = partitions(topic, partitionCount);
            c.assign(tps);
            c.seekToBeginning(tps);
            List<ConsumerRecord<String, String>> got = pollFor(c, expected, Duration.ofSeconds(60));
            c.poll(Duration.ofMillis(500)).forEach(got::add);
            return got;
        }
    }

    private static Map<Integer, List<String>> valuesByPartition(List<ConsumerRecord<String, String>> records) {
        Map<Integer, List<String>> m = new HashMap<>();
        for (ConsumerRecord<String, String> r : records) {
            m.computeIfAbsent(r.partition(), k -> new ArrayList<>()).add(r.value());
        }
        return m;
    }

    /** Whether `t` or one of its causes is a fencing error. */
    private static boolean fenced(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof ProducerFencedException || c instanceof InvalidProducerEpochException) {
                return true;
            }
        }
        return false;
    }

    private static String chain(Throwable t) {
        StringBuilder s = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause()) {
            s.append(s.length() == 0 ? "" : " <- ").append(c);
        }
        return s.toString();
    }

    @Test
    void readCommittedSeesCommittedTransactionsOnlyAndReadUncommittedSeesAll() throws Exception {
        String topic = unique("txn-commit-abort");
        int partitionCount = 3;
        int perTxn = 100;
        Clients.createTopic(BROKER.bootstrap(), topic, partitionCount);
        // Transaction 1 is aborted, 0, 2 and 3 are committed.
        boolean[] commit = {true, false, true, true};
        Map<Integer, List<String>> committed = new HashMap<>();
        Map<Integer, List<String>> all = new HashMap<>();
        try (KafkaProducer<String, String> p = transactional(unique("txn-a"))) {
            for (int t = 0; t < commit.length; t++) {
                p.beginTransaction();
                for (int i = 0; i < perTxn; i++) {
                    int part = i % partitionCount;
                    String value = "t" + t + "-" + i;
                    p.send(new ProducerRecord<>(topic, part, "k" + i, value));
                    all.computeIfAbsent(part, k -> new ArrayList<>()).add(value);
                    if (commit[t]) {
                        committed.computeIfAbsent(part, k -> new ArrayList<>()).add(value);
                    }
                }
                if (commit[t]) {
                    p.commitTransaction();
                } else {
                    p.flush(); // the records are in the log before the abort marker
                    p.abortTransaction();
                }
            }
        }

        List<ConsumerRecord<String, String>> readCommitted = readAll(topic, partitionCount, 300, COMMITTED);
        assertEquals(300, readCommitted.size(), "records read with read_committed");
        assertEquals(committed, valuesByPartition(readCommitted),
                "read_committed: the committed values of each partition, in order");

        List<ConsumerRecord<String, String>> readUncommitted = readAll(topic, partitionCount, 400, UNCOMMITTED);
        assertEquals(400, readUncommitted.size(), "records read with read_uncommitted");
        assertEquals(all, valuesByPartition(readUncommitted),
                "read_uncommitted: every value of each partition, in order");

        // Each transaction wrote one marker (one offset) to each of the 3 partitions.
        try (KafkaConsumer<String, String> c = Clients.consumer(BROKER.bootstrap(),
                map(ConsumerConfig.ISOLATION_LEVEL_CONFIG, COMMITTED))) {
            Map<TopicPartition, Long> ends = c.endOffsets(partitions(topic, partitionCount),
                    Duration.ofSeconds(TIMEOUT_S));
            for (int part = 0; part < partitionCount; part++) {
                assertEquals(all.get(part).size() + commit.length,
                        ends.get(new TopicPartition(topic, part)).longValue(),
                        "last stable offset of partition " + part + " (records + 4 markers)");
            }
        }
        // Offsets seen by read_committed skip the aborted records and the markers.
        for (ConsumerRecord<String, String> r : readCommitted) {
            int t = Integer.parseInt(r.value().substring(1, r.value().indexOf('-')));
            int i = Integer.parseInt(r.value().substring(r.value().indexOf('-') + 1));
            int before = t * (perTxn / partitionCount + (r.partition() < perTxn % partitionCount ? 1 : 0));
            assertEquals(before + t + i / partitionCount, r.offset(), "offset of " + r.value());
        }

        // The classic protocol (no transaction.version=2 finalized): EndTxn up
        // to v4 and AddPartitionsToTxn up to v3, as the broker counts them.
        Map<String, Set<Integer>> versions = requestVersions();
        assertTrue(!versions.getOrDefault("EndTxn", Set.of()).isEmpty(), "EndTxn served: " + versions);
        assertTrue(versions.get("EndTxn").stream().allMatch(v -> v <= 4), "EndTxn versions " + versions);
        assertTrue(!versions.getOrDefault("AddPartitionsToTxn", Set.of()).isEmpty(), "AddPartitionsToTxn: " + versions);
        assertTrue(versions.get("AddPartitionsToTxn").stream().allMatch(v -> v <= 3),
                "AddPartitionsToTxn versions " + versions);
    }

    /** The versions of each request the broker served so far (kop_server_REQUESTS_total on /metrics). */
    private static Map<String, Set<Integer>> requestVersions() throws Exception {
        HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + BROKER.broker().webPort + "/metrics"))
                .timeout(Duration.ofSeconds(TIMEOUT_S)).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), r.body());
        Map<String, Set<Integer>> m = new TreeMap<>();
        Pattern request = Pattern.compile("request=\"([^\"]+)\"");
        Pattern version = Pattern.compile("version=\"(\\d+)\"");
        r.body().lines().filter(l -> l.startsWith("kop_server_REQUESTS_total{")).forEach(l -> {
            Matcher a = request.matcher(l);
            Matcher v = version.matcher(l);
            if (a.find() && v.find()) {
                m.computeIfAbsent(a.group(1), k -> new TreeSet<>()).add(Integer.parseInt(v.group(1)));
            }
        });
        System.out.println("request versions served: " + m);
        return m;
    }

    @Test
    void secondProducerWithTheSameTransactionalIdFencesTheFirst() throws Exception {
        String topic = unique("txn-fencing");
        String txnId = unique("txn-zombie");
        Clients.createTopic(BROKER.bootstrap(), topic, 1);
        try (KafkaProducer<String, String> zombie = transactional(txnId)) {
            zombie.beginTransaction();
            for (int i = 0; i < 10; i++) {
                zombie.send(new ProducerRecord<>(topic, 0, null, "zombie-" + i));
            }
            zombie.flush();

            // The successor's InitProducerId bumps the epoch and aborts the open transaction.
            try (KafkaProducer<String, String> successor = transactional(txnId)) {
                AtomicReference<Exception> sendError = new AtomicReference<>();
                KafkaException thrown = assertThrows(KafkaException.class, () -> {
                    zombie.send(new ProducerRecord<>(topic, 0, null, "zombie-late"), (md, e) -> sendError.set(e));
                    zombie.commitTransaction();
                }, "the fenced producer's send and commit");
                System.out.println("fenced producer: commit threw " + chain(thrown) + "; the late send "
                        + (sendError.get() == null ? "succeeded" : "failed: " + chain(sendError.get())));
                assertTrue(fenced(thrown), "fenced, not: " + chain(thrown));
                if (sendError.get() != null) {
                    assertTrue(fenced(sendError.get()), "the late send failed fenced, not: " + chain(sendError.get()));
                }

                successor.beginTransaction();
                for (int i = 0; i < 10; i++) {
                    successor.send(new ProducerRecord<>(topic, 0, null, "successor-" + i));
                }
                successor.commitTransaction();
            }
        }
        List<ConsumerRecord<String, String>> log = readAll(topic, 1, 20, UNCOMMITTED);
        log.forEach(r -> System.out.println("read_uncommitted offset " + r.offset() + ": " + r.value()));
        List<String> values = readAll(topic, 1, 10, COMMITTED).stream()
                .map(ConsumerRecord::value).collect(Collectors.toList());
        assertEquals(IntStream.range(0, 10).mapToObj(i -> "successor-" + i).collect(Collectors.toList()), values,
                "read_committed sees the successor's transaction only");
        List<String> uncommitted = log.stream().map(ConsumerRecord::value).collect(Collectors.toList());
        assertFalse(uncommitted.contains("zombie-late"), "the fenced send reached the log: " + uncommitted);
        assertEquals(20, uncommitted.size(), "read_uncommitted: the aborted and the committed records " + uncommitted);
    }

    @Test
    void consumeTransformProduceCommitsOffsetsWithTheTransaction() throws Exception {
        String input = unique("ctp-in");
        String output = unique("ctp-out");
        String group = unique("ctp-group");
        String txnId = unique("ctp-txn");
        Clients.createTopic(BROKER.bootstrap(), input, 2);
        Clients.createTopic(BROKER.bootstrap(), output, 1);
        List<TopicPartition> inputs = partitions(input, 2);
        try (KafkaProducer<String, String> plain = Clients.producer(BROKER.bootstrap(), map())) {
            for (int i = 0; i < 20; i++) {
                plain.send(new ProducerRecord<>(input, i % 2, null, "in-" + i));
            }
            plain.flush();
        }

        try (KafkaConsumer<String, String> consumer = Clients.consumer(BROKER.bootstrap(), map(
                ConsumerConfig.GROUP_ID_CONFIG, group,
                ConsumerConfig.ISOLATION_LEVEL_CONFIG, COMMITTED,
                ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500));
                KafkaProducer<String, String> producer = transactional(txnId)) {
            consumer.subscribe(List.of(input));
            List<ConsumerRecord<String, String>> batch = pollFor(consumer, 20, Duration.ofSeconds(30));
            assertEquals(20, batch.size(), "input records consumed");
            assertEquals(Set.copyOf(inputs), consumer.assignment());

            producer.beginTransaction();
            for (ConsumerRecord<String, String> r : batch) {
                producer.send(new ProducerRecord<>(output, 0, null, r.value().replace("in-", "out-")));
            }
            Map<TopicPartition, OffsetAndMetadata> firstOffsets = Map.of(
                    inputs.get(0), new OffsetAndMetadata(10), inputs.get(1), new OffsetAndMetadata(10));
            producer.sendOffsetsToTransaction(firstOffsets, consumer.groupMetadata());
            producer.flush();
            assertEquals(Map.of(), groupOffsets(group), "offsets of the open transaction are not committed yet");

            // A read_committed consumer's committed() asks with require_stable: it waits for the transaction.
            CompletableFuture<Map<TopicPartition, OffsetAndMetadata>> stable = CompletableFuture.supplyAsync(() -> {
                try (KafkaConsumer<String, String> c = Clients.consumer(BROKER.bootstrap(), map(
                        ConsumerConfig.GROUP_ID_CONFIG, group,
                        ConsumerConfig.ISOLATION_LEVEL_CONFIG, COMMITTED))) {
                    return c.committed(Set.copyOf(inputs), Duration.ofSeconds(TIMEOUT_S));
                }
            });
            Thread.sleep(1500);
            assertFalse(stable.isDone(), () -> "require_stable OffsetFetch answered during the transaction: "
                    + stable.getNow(null));

            producer.commitTransaction();
            // EndTxn answers once PrepareCommit is durable; the offsets are
            // committed before the coordinator writes CompleteCommit.
            awaitState(txnId, TransactionState.COMPLETE_COMMIT);
            assertEquals(firstOffsets, groupOffsets(group), "offsets committed with the transaction");
            assertEquals(firstOffsets, stable.get(TIMEOUT_S, TimeUnit.SECONDS),
                    "require_stable OffsetFetch after the commit");

            // A second round is aborted: its offsets are dropped, the committed ones stay.
            try (KafkaProducer<String, String> plain = Clients.producer(BROKER.bootstrap(), map())) {
                for (int i = 20; i < 30; i++) {
                    plain.send(new ProducerRecord<>(input, i % 2, null, "in-" + i));
                }
                plain.flush();
            }
            List<ConsumerRecord<String, String>> second = pollFor(consumer, 10, Duration.ofSeconds(30));
            assertEquals(10, second.size(), "second batch consumed");
            producer.beginTransaction();
            for (ConsumerRecord<String, String> r : second) {
                producer.send(new ProducerRecord<>(output, 0, null, r.value().replace("in-", "out-")));
            }
            producer.sendOffsetsToTransaction(Map.of(
                    inputs.get(0), new OffsetAndMetadata(15), inputs.get(1), new OffsetAndMetadata(15)),
                    consumer.groupMetadata());
            producer.flush();
            producer.abortTransaction();
            awaitState(txnId, TransactionState.COMPLETE_ABORT);
            assertEquals(firstOffsets, groupOffsets(group), "offsets after the aborted transaction");
            try (KafkaConsumer<String, String> c = Clients.consumer(BROKER.bootstrap(), map(
                    ConsumerConfig.GROUP_ID_CONFIG, group,
                    ConsumerConfig.ISOLATION_LEVEL_CONFIG, COMMITTED))) {
                assertEquals(firstOffsets, c.committed(Set.copyOf(inputs), Duration.ofSeconds(TIMEOUT_S)),
                        "require_stable OffsetFetch after the abort");
            }
        }

        List<String> out = readAll(output, 1, 20, COMMITTED).stream()
                .map(ConsumerRecord::value).sorted().collect(Collectors.toList());
        assertEquals(IntStream.range(0, 20).mapToObj(i -> "out-" + i).sorted().collect(Collectors.toList()), out,
                "read_committed output: the first (committed) round only");
    }

    /** The group's committed offsets as Admin lists them (without require_stable). */
    private static Map<TopicPartition, OffsetAndMetadata> groupOffsets(String group) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> m = admin.listConsumerGroupOffsets(group)
                .partitionsToOffsetAndMetadata().get(TIMEOUT_S, TimeUnit.SECONDS);
        // Strip the leader epoch and metadata: only the offsets are compared.
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        m.forEach((tp, om) -> {
            if (om != null) {
                offsets.put(tp, new OffsetAndMetadata(om.offset()));
            }
        });
        return offsets;
    }

    private static TransactionDescription describe(String txnId) throws Exception {
        return admin.describeTransactions(List.of(txnId)).description(txnId).get(TIMEOUT_S, TimeUnit.SECONDS);
    }

    private static TransactionListing listed(String txnId, ListTransactionsOptions options) throws Exception {
        Collection<TransactionListing> all = admin.listTransactions(options).all().get(TIMEOUT_S, TimeUnit.SECONDS);
        List<TransactionListing> mine = all.stream().filter(l -> l.transactionalId().equals(txnId))
                .collect(Collectors.toList());
        assertTrue(mine.size() <= 1, "listed once: " + mine);
        return mine.isEmpty() ? null : mine.get(0);
    }

    @Test
    void adminDescribesAndListsTransactions() throws Exception {
        String topic = unique("txn-admin");
        String txnId = unique("txn-described");
        Clients.createTopic(BROKER.bootstrap(), topic, 2);
        long producerId;
        int epoch;
        try (KafkaProducer<String, String> p = transactional(txnId)) {
            TransactionDescription empty = describe(txnId);
            assertEquals(TransactionState.EMPTY, empty.state(), "after initTransactions: " + empty);
            assertEquals(30_000, empty.transactionTimeoutMs());
            assertEquals(Set.of(), empty.topicPartitions());
            producerId = empty.producerId();
            epoch = empty.producerEpoch();
            assertTrue(producerId >= 0, "producer id " + producerId);
            assertTrue(epoch >= 0, "producer epoch " + epoch);

            long before = System.currentTimeMillis();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 0, null, "a"));
            p.send(new ProducerRecord<>(topic, 1, null, "b"));
            p.flush();
            TransactionDescription ongoing = describe(txnId);
            assertEquals(TransactionState.ONGOING, ongoing.state(), "during the transaction: " + ongoing);
            assertEquals(producerId, ongoing.producerId());
            assertEquals(epoch, ongoing.producerEpoch());
            assertEquals(Set.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1)), ongoing.topicPartitions());
            assertTrue(ongoing.transactionStartTimeMs().isPresent(), "start time of " + ongoing);
            long start = ongoing.transactionStartTimeMs().getAsLong();
            assertTrue(start >= before - 5_000 && start <= System.currentTimeMillis() + 5_000,
                    "start time " + start + " around " + before);
            assertEquals(0, ongoing.coordinatorId(), "the broker's node id");

            TransactionListing l = listed(txnId, new ListTransactionsOptions());
            assertTrue(l != null, "listTransactions lists " + txnId);
            assertEquals(TransactionState.ONGOING, l.state());
            assertEquals(producerId, l.producerId());
            l = listed(txnId, new ListTransactionsOptions().filterStates(List.of(TransactionState.ONGOING)));
            assertTrue(l != null, "listed among the ongoing ones");
            assertEquals(null, listed(txnId, new ListTransactionsOptions()
                    .filterStates(List.of(TransactionState.COMPLETE_COMMIT))), "not among the committed ones");
            assertTrue(listed(txnId, new ListTransactionsOptions().filterProducerIds(Set.of(producerId))) != null,
                    "listed by its producer id");
            assertEquals(null, listed(txnId, new ListTransactionsOptions()
                    .filterProducerIds(Set.of(producerId + 1000))), "not listed under another producer id");

            p.commitTransaction();
            awaitState(txnId, TransactionState.COMPLETE_COMMIT);
            TransactionDescription done = describe(txnId);
            assertEquals(producerId, done.producerId());
            assertEquals(Set.of(), done.topicPartitions(), "no partitions after the commit");
            l = listed(txnId, new ListTransactionsOptions().filterStates(List.of(TransactionState.COMPLETE_COMMIT)));
            assertTrue(l != null, "listed among the committed ones");
            assertEquals(producerId, l.producerId());

            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 0, null, "c"));
            p.flush();
            p.abortTransaction();
            awaitState(txnId, TransactionState.COMPLETE_ABORT);
        }
        // A new producer with the same transactional id keeps the producer id and bumps the epoch.
        try (KafkaProducer<String, String> again = transactional(txnId)) {
            TransactionDescription d = describe(txnId);
            assertEquals(producerId, d.producerId(), "producer id after a second initTransactions");
            assertEquals(epoch + 1, d.producerEpoch(), "epoch after a second initTransactions");
        }
        // An unknown transactional id.
        String unknown = unique("txn-unknown");
        Exception e = assertThrows(Exception.class, () -> describe(unknown));
        assertTrue(chain(e).contains("TransactionalIdNotFoundException"), chain(e));
    }

    /** Waits until describeTransactions shows the state (markers written, the transaction ended). */
    private static void awaitState(String txnId, TransactionState state) throws InterruptedException {
        waitUntil(txnId + " in state " + state, Duration.ofSeconds(TIMEOUT_S), () -> stateOf(txnId) == state);
    }

    private static TransactionState stateOf(String txnId) {
        try {
            return describe(txnId).state();
        } catch (Exception e) {
            fail("describeTransactions " + txnId + ": " + chain(e));
            return null;
        }
    }
}
