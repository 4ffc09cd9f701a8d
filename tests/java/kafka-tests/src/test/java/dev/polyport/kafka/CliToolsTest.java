package dev.polyport.kafka;

import static dev.polyport.kafka.Clients.TIMEOUT_S;
import static dev.polyport.kafka.Clients.unique;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Apache Kafka's command-line tools (the classes behind kafka-topics.sh,
 * kafka-console-producer.sh, kafka-console-consumer.sh,
 * kafka-consumer-groups.sh and kafka-configs.sh), each run as a child JVM
 * with the classpath that the kafka-cli module resolved.
 */
class CliToolsTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension("groupInitialRebalanceDelayMs=0");

    static final String TOPICS = "org.apache.kafka.tools.TopicCommand";
    static final String CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer";
    static final String CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer";
    static final String CONSUMER_GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
    static final String CONFIGS = "kafka.admin.ConfigCommand";
    static final long TOOL_TIMEOUT_S = 90;

    private static String classpath;
    private static Admin admin;

    record Result(int exit, String out, String err) {
        List<String> lines() {
            return out.lines().filter(l -> !l.isBlank()).collect(Collectors.toList());
        }
    }

    @BeforeAll
    static void setUp() throws IOException {
        Path file = Paths.get(System.getProperty("polyport.cliClasspathFile", "../kafka-cli/target/cli.classpath"));
        if (!Files.isRegularFile(file)) {
            fail(file + " is missing: build the kafka-cli module first (tests/java/run.sh runs the reactor)");
        }
        classpath = Files.readString(file).trim();
        admin = Clients.admin(BROKER.bootstrap());
    }

    @AfterAll
    static void tearDown() {
        if (admin != null) {
            admin.close();
        }
    }

    /** Runs a tool's main class in a child JVM; stdin from `input` (or nothing), bounded in time. */
    static Result run(String mainClass, String input, String... args) throws Exception {
        Path work = Files.createTempDirectory("polyport-cli-");
        try {
            File out = work.resolve("out").toFile();
            File err = work.resolve("err").toFile();
            Path in = work.resolve("in");
            Files.writeString(in, input == null ? "" : input);
            List<String> cmd = new ArrayList<>(List.of(
                    Paths.get(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                    "-cp", classpath, mainClass));
            cmd.addAll(Arrays.asList(args));
            Process p = new ProcessBuilder(cmd)
                    .redirectInput(in.toFile())
                    .redirectOutput(out)
                    .redirectError(err)
                    .start();
            if (!p.waitFor(TOOL_TIMEOUT_S, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                fail(mainClass + " " + String.join(" ", args) + " did not finish in " + TOOL_TIMEOUT_S + " s;"
                        + "\nstdout:\n" + Files.readString(out.toPath()) + "\nstderr:\n" + Files.readString(err.toPath()));
            }
            Result r = new Result(p.exitValue(), Files.readString(out.toPath(), StandardCharsets.UTF_8),
                    Files.readString(err.toPath(), StandardCharsets.UTF_8));
            System.out.println("$ " + mainClass + " " + String.join(" ", args) + "\nexit " + r.exit
                    + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err);
            return r;
        } finally {
            try (var paths = Files.walk(work)) {
                paths.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
            }
        }
    }

    /** Runs a tool and requires exit code 0. */
    static Result ok(String mainClass, String input, String... args) throws Exception {
        Result r = run(mainClass, input, args);
        assertEquals(0, r.exit, () -> mainClass + " " + String.join(" ", args) + " exited " + r.exit
                + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err);
        return r;
    }

    @Test
    void kafkaTopicsCreatesListsAltersAndDescribes() throws Exception {
        String topic = unique("cli-topic");
        String b = BROKER.bootstrap();
        ok(TOPICS, null, "--bootstrap-server", b, "--create", "--topic", topic,
                "--partitions", "3", "--replication-factor", "1");
        assertTrue(ok(TOPICS, null, "--bootstrap-server", b, "--list").lines().contains(topic));

        ok(TOPICS, null, "--bootstrap-server", b, "--alter", "--topic", topic, "--partitions", "4");
        Result d = ok(TOPICS, null, "--bootstrap-server", b, "--describe", "--topic", topic);
        List<String> lines = d.lines();
        assertTrue(lines.get(0).startsWith("Topic: " + topic + "\t"), d.out);
        assertTrue(lines.get(0).contains("PartitionCount: 4"), d.out);
        assertTrue(lines.get(0).contains("ReplicationFactor: 1"), d.out);
        for (int p = 0; p < 4; p++) {
            String prefix = "Topic: " + topic + "\tPartition: " + p + "\tLeader: 0\tReplicas: 0\tIsr: 0";
            assertTrue(lines.stream().anyMatch(l -> l.trim().startsWith(prefix)),
                    "no line starting with '" + prefix + "' in:\n" + d.out);
        }
        TopicDescription td = admin.describeTopics(List.of(topic)).allTopicNames()
                .get(TIMEOUT_S, TimeUnit.SECONDS).get(topic);
        assertEquals(4, td.partitions().size());
    }

    /** Rows of `kafka-consumer-groups --describe` for a topic: partition to {CURRENT-OFFSET, LOG-END-OFFSET, LAG}. */
    private static Map<Integer, long[]> describeRows(Result r, String group, String topic) {
        Map<Integer, long[]> rows = new TreeMap<>();
        for (String line : r.lines()) {
            String[] cols = line.trim().split("\\s+");
            if (cols.length >= 6 && cols[0].equals(group) && cols[1].equals(topic)) {
                rows.put(Integer.parseInt(cols[2]), new long[] {
                    cols[3].equals("-") ? -1 : Long.parseLong(cols[3]),
                    Long.parseLong(cols[4]),
                    cols[5].equals("-") ? -1 : Long.parseLong(cols[5])});
            }
        }
        return rows;
    }

    @Test
    void consoleProducerConsoleConsumerAndConsumerGroups() throws Exception {
        String topic = unique("cli-console");
        String group = unique("cli-group");
        String b = BROKER.bootstrap();
        int n = 30;
        Clients.createTopic(b, topic, 2);

        String input = IntStream.range(0, n).mapToObj(i -> "key-" + i + ":value-" + i)
                .collect(Collectors.joining("\n", "", "\n"));
        ok(CONSOLE_PRODUCER, input, "--bootstrap-server", b, "--topic", topic,
                "--property", "parse.key=true", "--property", "key.separator=:");

        Result consumed = ok(CONSOLE_CONSUMER, null, "--bootstrap-server", b, "--topic", topic,
                "--from-beginning", "--max-messages", String.valueOf(n), "--timeout-ms", "30000",
                "--group", group, "--consumer-property", "group.protocol=classic",
                "--property", "print.key=true", "--property", "key.separator=:");
        assertEquals(input.lines().sorted().collect(Collectors.toList()),
                consumed.lines().stream().sorted().collect(Collectors.toList()),
                "console consumer output\nstderr:\n" + consumed.err);
        assertTrue(consumed.err.contains("Processed a total of " + n + " messages"), consumed.err);

        assertTrue(ok(CONSUMER_GROUPS, null, "--bootstrap-server", b, "--list").lines().contains(group));

        // The console consumer committed what it read: no lag.
        Result described = ok(CONSUMER_GROUPS, null, "--bootstrap-server", b, "--describe", "--group", group);
        Map<Integer, long[]> rows = describeRows(described, group, topic);
        assertEquals(Set.of(0, 1), rows.keySet(), described.out);
        assertEquals(n, rows.values().stream().mapToLong(r -> r[1]).sum(), "log end offsets\n" + described.out);
        for (Map.Entry<Integer, long[]> e : rows.entrySet()) {
            assertEquals(e.getValue()[1], e.getValue()[0], "current offset of partition " + e.getKey()
                    + "\n" + described.out);
            assertEquals(0, e.getValue()[2], "lag of partition " + e.getKey() + "\n" + described.out);
        }

        Result reset = ok(CONSUMER_GROUPS, null, "--bootstrap-server", b, "--reset-offsets", "--to-earliest",
                "--execute", "--group", group, "--topic", topic);
        assertTrue(reset.out.contains(topic), reset.out);
        Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(group)
                .partitionsToOffsetAndMetadata().get(TIMEOUT_S, TimeUnit.SECONDS);
        Map<TopicPartition, Long> wanted = new HashMap<>();
        wanted.put(new TopicPartition(topic, 0), 0L);
        wanted.put(new TopicPartition(topic, 1), 0L);
        assertEquals(wanted, offsets.entrySet().stream()
                .collect(Collectors.toMap(Map.Entry::getKey, e -> e.getValue().offset())), "after --reset-offsets");

        described = ok(CONSUMER_GROUPS, null, "--bootstrap-server", b, "--describe", "--group", group);
        rows = describeRows(described, group, topic);
        for (Map.Entry<Integer, long[]> e : rows.entrySet()) {
            assertEquals(0, e.getValue()[0], "current offset after reset\n" + described.out);
            assertEquals(e.getValue()[1], e.getValue()[2], "lag after reset\n" + described.out);
        }

        // The group reads everything again from the reset offsets.
        Result again = ok(CONSOLE_CONSUMER, null, "--bootstrap-server", b, "--topic", topic,
                "--max-messages", String.valueOf(n), "--timeout-ms", "30000", "--group", group,
                "--consumer-property", "group.protocol=classic");
        assertEquals(IntStream.range(0, n).mapToObj(i -> "value-" + i).sorted().collect(Collectors.toList()),
                again.lines().stream().sorted().collect(Collectors.toList()), "stderr:\n" + again.err);
    }

    private static ConfigEntry retention(String topic) throws Exception {
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        return admin.describeConfigs(List.of(res)).all().get(TIMEOUT_S, TimeUnit.SECONDS).get(res)
                .get("retention.ms");
    }

    @Test
    void kafkaConfigsAltersAndDescribesRetention() throws Exception {
        String topic = unique("cli-configs");
        String b = BROKER.bootstrap();
        Clients.createTopic(b, topic, 1);
        String defaultMs = retention(topic).value();

        ok(CONFIGS, null, "--bootstrap-server", b, "--entity-type", "topics", "--entity-name", topic,
                "--alter", "--add-config", "retention.ms=86400000");
        ConfigEntry altered = retention(topic);
        assertEquals("86400000", altered.value());
        assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, altered.source());

        Result described = ok(CONFIGS, null, "--bootstrap-server", b, "--entity-type", "topics",
                "--entity-name", topic, "--describe");
        assertTrue(described.out.contains("retention.ms=86400000"), described.out);

        ok(CONFIGS, null, "--bootstrap-server", b, "--entity-type", "topics", "--entity-name", topic,
                "--alter", "--delete-config", "retention.ms");
        ConfigEntry reset = retention(topic);
        assertEquals(defaultMs, reset.value());
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, reset.source());
    }
}
