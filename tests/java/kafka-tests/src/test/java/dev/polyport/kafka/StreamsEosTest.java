package dev.polyport.kafka;

import static dev.polyport.kafka.Clients.TIMEOUT_S;
import static dev.polyport.kafka.Clients.map;
import static dev.polyport.kafka.Clients.unique;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.stream.Stream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Kafka Streams with processing.guarantee=exactly_once_v2 (transactions under
 * the hood: a transactional producer per stream thread, offsets sent to the
 * transaction, read_committed consumers of the repartition topic): a word
 * count ({@link WordCountApp}) in a child JVM over 3000 lines of words from a
 * small vocabulary, so that each word's count is known. Half-way through the
 * input, while a transaction of the application has records in the log (a
 * partition's last stable offset below its end offset), either the
 * application is killed with SIGKILL and started again on its state directory
 * (its successor's InitProducerId fences it and aborts its transaction), or
 * the broker is killed with SIGKILL and started again on its data directory
 * while the application runs on and reconnects; either way, the last count of
 * each word in the output (read_committed) is exactly its number of
 * occurrences: no record counted twice, none lost.
 */
class StreamsEosTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension(String.join("\n",
            "groupInitialRebalanceDelayMs=0",
            "transactionAbortTimedOutTransactionCleanupIntervalMs=1000"));

    static final List<String> VOCABULARY = List.of("apple", "banana", "cherry", "date", "elder", "fig",
            "grape", "hazel", "iris", "juniper", "kiwi", "lemon");
    static final int LINES = 3000;
    /** The input goes in CHUNKS chunks; the crash comes after chunk KILL_AT. */
    static final int CHUNKS = 30;
    static final int KILL_AT = 15;
    static final long FINISH_TIMEOUT_S = 75;

    /** The input: LINES lines of 1 to 8 words, the same for a seed. */
    static List<String> lines(long seed) {
        Random r = new Random(seed);
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < LINES; i++) {
            int n = 1 + r.nextInt(8);
            lines.add(IntStream.range(0, n).mapToObj(w -> VOCABULARY.get(r.nextInt(VOCABULARY.size())))
                    .collect(Collectors.joining(" ")));
        }
        return lines;
    }

    static Map<String, Long> expectedCounts(List<String> lines) {
        Map<String, Long> m = new TreeMap<>();
        for (String line : lines) {
            for (String w : line.split(" ")) {
                m.merge(w, 1L, Long::sum);
            }
        }
        return m;
    }

    /** The classpath of this test JVM (Surefire's own property when it forks through a manifest jar). */
    static String testClasspath() {
        String cp = System.getProperty("surefire.test.class.path");
        return cp == null || cp.isBlank() ? System.getProperty("java.class.path") : cp;
    }

    /** One run of WordCountApp in a child JVM, its output in target/streams-logs/NAME.log. */
    static final class App {
        final Process process;
        final Path log;
        /** If the test JVM dies, the application goes too. */
        private final Thread reaper;

        App(String name, String appId, String input, String output, Path stateDir) throws IOException {
            Path logDir = Paths.get(System.getProperty("polyport.logDir", "target/broker-logs"))
                    .resolveSibling("streams-logs");
            Files.createDirectories(logDir);
            log = logDir.resolve(name + ".log");
            Files.writeString(log, "=== " + appId + " started " + java.time.Instant.now() + "\n",
                    StandardCharsets.UTF_8);
            List<String> cmd = List.of(
                    Paths.get(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                    "-Dorg.slf4j.simpleLogger.showDateTime=true",
                    "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
                    "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.streams=info",
                    "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.clients.producer.internals.TransactionManager=info",
                    "-cp", testClasspath(), WordCountApp.class.getName(),
                    BROKER.bootstrap(), appId, input, output, stateDir.toString());
            process = new ProcessBuilder(cmd)
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .start();
            reaper = new Thread(process::destroyForcibly, "word-count-reaper");
            Runtime.getRuntime().addShutdownHook(reaper);
        }

        private void forget() {
            try {
                Runtime.getRuntime().removeShutdownHook(reaper);
            } catch (IllegalStateException shuttingDown) {
                // the hook runs anyway
            }
        }

        void assertAlive(String when) throws IOException {
            if (!process.isAlive()) {
                fail("the word count application exited with " + process.exitValue() + " " + when
                        + "; its log " + log + " ends with:\n" + tail());
            }
        }

        String tail() throws IOException {
            List<String> all = Files.readAllLines(log, StandardCharsets.UTF_8);
            return String.join("\n", all.subList(Math.max(0, all.size() - 60), all.size()));
        }

        /** SIGKILL: no close, no commit, the open transaction left behind. */
        void kill() throws InterruptedException {
            process.destroyForcibly();
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                fail("the word count application still runs 10 s after SIGKILL");
            }
            forget();
        }

        /** SIGTERM: Kafka Streams closes in its shutdown hook. */
        void stop() throws InterruptedException {
            if (process.isAlive()) {
                process.destroy();
                if (!process.waitFor(30, TimeUnit.SECONDS)) {
                    process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                }
            }
            forget();
        }
    }

    static KafkaConsumer<String, Long> countsConsumer() {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, BROKER.bootstrap());
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 20_000);
        return new KafkaConsumer<>(p);
    }

    /** Follows the output topic (read_committed): the last count of each word and how many counts came. */
    static final class Output implements AutoCloseable {
        final KafkaConsumer<String, Long> consumer = countsConsumer();
        final Map<String, Long> last = new TreeMap<>();
        long records;

        Output(String topic, int partitions) {
            List<TopicPartition> tps = IntStream.range(0, partitions)
                    .mapToObj(p -> new TopicPartition(topic, p)).collect(Collectors.toList());
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
        }

        void poll(Duration d) {
            for (ConsumerRecord<String, Long> r : consumer.poll(d)) {
                last.put(r.key(), r.value());
                records++;
            }
        }

        @Override
        public void close() {
            consumer.close(Duration.ofSeconds(5));
        }
    }

    /** Everything in the output up to its last stable offset, read afresh: the last count of each word. */
    static Map<String, Long> finalCounts(String topic, int partitions) {
        Map<String, Long> last = new TreeMap<>();
        try (KafkaConsumer<String, Long> c = countsConsumer()) {
            List<TopicPartition> tps = IntStream.range(0, partitions)
                    .mapToObj(p -> new TopicPartition(topic, p)).collect(Collectors.toList());
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> ends = c.endOffsets(tps, Duration.ofSeconds(TIMEOUT_S));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_S);
            while (tps.stream().anyMatch(tp -> c.position(tp) < ends.get(tp))) {
                if (System.nanoTime() > deadline) {
                    fail("output not read up to its last stable offsets " + ends + " in " + TIMEOUT_S + " s");
                }
                c.poll(Duration.ofMillis(200)).forEach(r -> last.put(r.key(), r.value()));
            }
        }
        return last;
    }

    /** Produces chunks [from, to) of the input (plain idempotent producer, every send acknowledged). */
    static void produce(List<String> lines, String topic, int from, int to) throws Exception {
        int size = LINES / CHUNKS;
        try (KafkaProducer<String, String> p = Clients.producer(BROKER.bootstrap(), map())) {
            for (int chunk = from; chunk < to; chunk++) {
                List<Future<RecordMetadata>> sent = new ArrayList<>();
                for (int i = chunk * size; i < (chunk + 1) * size; i++) {
                    sent.add(p.send(new ProducerRecord<>(topic, "line-" + i, lines.get(i))));
                }
                p.flush();
                for (Future<RecordMetadata> f : sent) {
                    f.get(TIMEOUT_S, TimeUnit.SECONDS);
                }
            }
        }
    }

    /** Waits until some counts are in the output (read_committed). */
    static void awaitSomeOutput(Output out, App app) throws IOException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (out.records == 0) {
            app.assertAlive("before any output");
            if (System.nanoTime() > deadline) {
                fail("no committed output in 60 s; application log ends with:\n" + app.tail());
            }
            out.poll(Duration.ofMillis(200));
        }
    }

    /**
     * Waits until data of an unfinished transaction is in the log: a
     * partition (of the repartition topic, the changelog or the output) whose
     * last stable offset is below its end offset, the end read first. Returns
     * that partition and its offsets.
     */
    static String awaitOpenTransaction(String appId, String output, App app) throws Exception {
        Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
        for (String topic : List.of(appId + "-counts-repartition", appId + "-counts-changelog")) {
            for (int p = 0; p < 3; p++) {
                latest.put(new TopicPartition(topic, p), OffsetSpec.latest());
            }
        }
        for (int p = 0; p < 2; p++) {
            latest.put(new TopicPartition(output, p), OffsetSpec.latest());
        }
        try (Admin admin = Clients.admin(BROKER.bootstrap())) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (true) {
                app.assertAlive("while waiting for an open transaction");
                var ends = admin.listOffsets(latest, new ListOffsetsOptions(IsolationLevel.READ_UNCOMMITTED))
                        .all().get(TIMEOUT_S, TimeUnit.SECONDS);
                var stable = admin.listOffsets(latest, new ListOffsetsOptions(IsolationLevel.READ_COMMITTED))
                        .all().get(TIMEOUT_S, TimeUnit.SECONDS);
                for (TopicPartition tp : latest.keySet()) {
                    if (stable.get(tp).offset() < ends.get(tp).offset()) {
                        return tp + " (last stable offset " + stable.get(tp).offset() + ", end offset at least "
                                + ends.get(tp).offset() + ")";
                    }
                }
                if (System.nanoTime() > deadline) {
                    fail("no open transaction of " + appId + " seen in 20 s; application log ends with:\n"
                            + app.tail());
                }
            }
        }
    }

    /** Waits until every word's last count reached its expected count, then 2 s more. */
    static void awaitCounts(Output out, Map<String, Long> expected, App app) throws IOException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(FINISH_TIMEOUT_S);
        while (!expected.entrySet().stream().allMatch(e -> out.last.getOrDefault(e.getKey(), 0L) >= e.getValue())) {
            app.assertAlive("before the counts were complete (last counts " + out.last + ")");
            if (System.nanoTime() > deadline) {
                fail("counts not complete after " + FINISH_TIMEOUT_S + " s: " + out.last + ", expected " + expected
                        + "; application log ends with:\n" + app.tail());
            }
            out.poll(Duration.ofMillis(200));
        }
        long grace = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
        while (System.nanoTime() < grace) {
            out.poll(Duration.ofMillis(200));
        }
    }

    static void deleteDir(Path dir) {
        try (Stream<Path> paths = Files.walk(dir)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            // best effort
        }
    }

    static void log(long started, String what) {
        System.out.printf("%6d ms  %s%n", TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started), what);
    }

    /**
     * Runs the word count over the input: the first KILL_AT chunks, then (once
     * counts came out) one more chunk, and while a transaction of the
     * application is open with records in the log, a SIGKILL of the
     * application (started again on the same state directory) or of the
     * broker (started again on the same data directory); then the rest. The
     * last count of each word must be exact.
     */
    private static void crashMidway(String name, long seed, boolean killBroker) throws Exception {
        long t0 = System.nanoTime();
        String input = unique("wc-in");
        String output = unique("wc-out");
        String appId = unique("wc-" + name);
        Clients.createTopic(BROKER.bootstrap(), input, 3);
        Clients.createTopic(BROKER.bootstrap(), output, 2);
        List<String> lines = lines(seed);
        Map<String, Long> expected = expectedCounts(lines);
        Path stateDir = Files.createTempDirectory("polyport-streams-");
        App app = null;
        try {
            app = new App(name + "-1", appId, input, output, stateDir);
            try (Output out = new Output(output, 2)) {
                produce(lines, input, 0, KILL_AT);
                log(t0, "chunks 0 to " + (KILL_AT - 1) + " of " + CHUNKS + " produced");
                awaitSomeOutput(out, app);
                log(t0, "output seen: " + out.records + " counts");
                produce(lines, input, KILL_AT, KILL_AT + 1);
                String open = awaitOpenTransaction(appId, output, app);
                if (killBroker) {
                    BROKER.broker().kill();
                } else {
                    app.kill();
                }
                log(t0, (killBroker ? "broker" : "application") + " killed (SIGKILL) with a transaction open in "
                        + open + ", " + out.records + " counts seen");
            }
            if (killBroker) {
                Thread.sleep(1000);
                BROKER.broker().restart();
                log(t0, "broker ready again");
                app.assertAlive("after the broker's restart");
            } else {
                app = new App(name + "-2", appId, input, output, stateDir);
            }
            produce(lines, input, KILL_AT + 1, CHUNKS);
            log(t0, "all input produced");
            try (Output out = new Output(output, 2)) {
                awaitCounts(out, expected, app);
            }
            log(t0, "counts complete");
            app.assertAlive("at the end");
            assertEquals(expected, finalCounts(output, 2), "the last count of each word (read_committed)");
        } finally {
            if (app != null) {
                app.stop();
            }
            deleteDir(stateDir);
            log(t0, "done");
        }
    }

    @Test
    void applicationKilledMidwayCountsEachWordExactlyOnce() throws Exception {
        crashMidway("app-killed", 1, false);
    }

    @Test
    void brokerKilledMidwayCountsEachWordExactlyOnce() throws Exception {
        crashMidway("broker-killed", 2, true);
    }
}
