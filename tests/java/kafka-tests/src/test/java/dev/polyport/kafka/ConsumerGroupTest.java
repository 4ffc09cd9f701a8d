package dev.polyport.kafka;

import static dev.polyport.kafka.Clients.TIMEOUT_S;
import static dev.polyport.kafka.Clients.map;
import static dev.polyport.kafka.Clients.pollFor;
import static dev.polyport.kafka.Clients.unique;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.CloseOptions.GroupMembershipOperation;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Classic consumer groups (group.protocol=classic): eager and cooperative rebalancing, commits. */
class ConsumerGroupTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension("groupInitialRebalanceDelayMs=0");

    /** Follows the rebalance callbacks of one consumer. */
    static final class Tracker implements ConsumerRebalanceListener {
        final List<Set<TopicPartition>> revoked = new ArrayList<>();
        final List<Set<TopicPartition>> lost = new ArrayList<>();

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            if (!partitions.isEmpty()) {
                revoked.add(new HashSet<>(partitions));
            }
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> partitions) {
            lost.add(new HashSet<>(partitions));
        }
    }

    private static void produce(String topic, int partitions, int perPartition) throws Exception {
        try (KafkaProducer<String, String> p = Clients.producer(BROKER.bootstrap(), map())) {
            for (int i = 0; i < perPartition; i++) {
                for (int part = 0; part < partitions; part++) {
                    p.send(new ProducerRecord<>(topic, part, null, "p" + part + "-" + i));
                }
            }
            p.flush();
        }
    }

    private static KafkaConsumer<String, String> member(String group, String assignor, String clientId) {
        return member(group, assignor, clientId, 30_000);
    }

    private static KafkaConsumer<String, String> member(String group, String assignor, String clientId,
            int sessionTimeoutMs) {
        return Clients.consumer(BROKER.bootstrap(), map(
                ConsumerConfig.GROUP_ID_CONFIG, group,
                ConsumerConfig.CLIENT_ID_CONFIG, clientId,
                ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor,
                ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500,
                ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, sessionTimeoutMs,
                ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG, 60_000));
    }

    /** Polls every consumer in turn until the condition holds. */
    @SafeVarargs
    private static void pollUntil(String what, Duration timeout, BooleanSupplier done,
            Map<KafkaConsumer<String, String>, List<ConsumerRecord<String, String>>> sink,
            KafkaConsumer<String, String>... consumers) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!done.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                StringBuilder state = new StringBuilder();
                for (KafkaConsumer<String, String> c : consumers) {
                    state.append(' ').append(new TreeMap<>(Map.of("assignment", c.assignment().toString())));
                }
                fail("timed out after " + timeout + " waiting for " + what + ";" + state);
            }
            for (KafkaConsumer<String, String> c : consumers) {
                c.poll(Duration.ofMillis(100)).forEach(r -> sink.computeIfAbsent(c, k -> new ArrayList<>()).add(r));
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"range", "cooperative-sticky"})
    void twoMembersSharePartitionsAndTheSurvivorTakesAllAfterALeave(String strategy) throws Exception {
        boolean cooperative = strategy.equals("cooperative-sticky");
        String assignor = cooperative ? CooperativeStickyAssignor.class.getName() : RangeAssignor.class.getName();
        String topic = unique("shared-" + strategy);
        String group = unique("group-" + strategy);
        int partitionCount = 4;
        Clients.createTopic(BROKER.bootstrap(), topic, partitionCount);
        produce(topic, partitionCount, 10);
        Set<TopicPartition> all = IntStream.range(0, partitionCount)
                .mapToObj(p -> new TopicPartition(topic, p)).collect(Collectors.toSet());

        Map<KafkaConsumer<String, String>, List<ConsumerRecord<String, String>>> records = new HashMap<>();
        Tracker ta = new Tracker();
        Tracker tb = new Tracker();
        try (KafkaConsumer<String, String> a = member(group, assignor, "member-a")) {
            a.subscribe(List.of(topic), ta);
            pollUntil("member a to own all partitions", Duration.ofSeconds(30),
                    () -> a.assignment().equals(all), records, a);

            Set<TopicPartition> aBefore;
            KafkaConsumer<String, String> b = member(group, assignor, "member-b");
            try {
                b.subscribe(List.of(topic), tb);
                aBefore = new HashSet<>(a.assignment());
                pollUntil("the two members to split the partitions 2/2", Duration.ofSeconds(45), () -> {
                    Set<TopicPartition> union = new HashSet<>(a.assignment());
                    union.addAll(b.assignment());
                    return a.assignment().size() == 2 && b.assignment().size() == 2 && union.equals(all);
                }, records, a, b);
                Set<TopicPartition> aKept = new HashSet<>(a.assignment());
                if (cooperative) {
                    // Incremental: a gave up only the two partitions that moved to b.
                    Set<TopicPartition> moved = new HashSet<>(aBefore);
                    moved.removeAll(aKept);
                    assertEquals(List.of(moved), ta.revoked, "cooperative revocations of member a");
                } else {
                    // Eager: a gave up everything before rejoining.
                    assertEquals(List.of(all), ta.revoked, "eager revocations of member a");
                }
                assertTrue(ta.lost.isEmpty(), "member a lost no partitions: " + ta.lost);
                assertTrue(tb.lost.isEmpty(), "member b lost no partitions: " + tb.lost);
            } finally {
                long closing = System.nanoTime();
                b.close(CloseOptions.groupMembershipOperation(GroupMembershipOperation.LEAVE_GROUP)
                        .withTimeout(Duration.ofSeconds(TIMEOUT_S)));
                pollUntil("member a to own all partitions again after b left", Duration.ofSeconds(30),
                        () -> a.assignment().equals(all), records, a);
                long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - closing);
                // Well under the 30 s session timeout: the leave itself triggered the rebalance.
                assertTrue(tookMs < 20_000, "rebalance after LeaveGroup took " + tookMs + " ms");
            }
            assertTrue(ta.lost.isEmpty(), "member a lost no partitions: " + ta.lost);

            Set<String> seen = records.values().stream().flatMap(List::stream)
                    .map(ConsumerRecord::value).collect(Collectors.toSet());
            assertEquals(partitionCount * 10, seen.size(), "every record was consumed by some member");
        }
    }

    @Test
    void aMemberThatStopsHeartbeatingIsRemovedAfterItsSessionTimeout() throws Exception {
        String topic = unique("session");
        String group = unique("group-session");
        Clients.createTopic(BROKER.bootstrap(), topic, 2);
        String assignor = RangeAssignor.class.getName();
        Set<TopicPartition> all = Set.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1));
        Map<KafkaConsumer<String, String>, List<ConsumerRecord<String, String>>> sink = new HashMap<>();
        try (KafkaConsumer<String, String> a = member(group, assignor, "stays", 6_000)) {
            a.subscribe(List.of(topic));
            pollUntil("member a to own both partitions", Duration.ofSeconds(30),
                    () -> a.assignment().equals(all), sink, a);
            KafkaConsumer<String, String> b = member(group, assignor, "vanishes", 6_000);
            b.subscribe(List.of(topic));
            pollUntil("one partition each", Duration.ofSeconds(45),
                    () -> a.assignment().size() == 1 && b.assignment().size() == 1, sink, a, b);
            // Gone without a LeaveGroup: only the session timeout (6 s) removes it.
            b.close(CloseOptions.groupMembershipOperation(GroupMembershipOperation.REMAIN_IN_GROUP)
                    .withTimeout(Duration.ofSeconds(TIMEOUT_S)));
            long closed = System.nanoTime();
            pollUntil("member a to own both partitions after b's session expired", Duration.ofSeconds(40),
                    () -> a.assignment().equals(all), sink, a);
            long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - closed);
            assertTrue(tookMs >= 4_000, "b was removed after " + tookMs + " ms, before its session timed out");
        }
    }

    @Test
    void committedOffsetsAreWhereTheNextMemberResumes() throws Exception {
        String topic = unique("resume");
        String group = unique("group-resume");
        Clients.createTopic(BROKER.bootstrap(), topic, 2);
        produce(topic, 2, 20);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        String assignor = RangeAssignor.class.getName();

        try (KafkaConsumer<String, String> c = member(group, assignor, "first")) {
            c.subscribe(List.of(topic));
            assertEquals(40, pollFor(c, 40, Duration.ofSeconds(30)).size());
            c.commitSync(Map.of(p0, new OffsetAndMetadata(7, "meta-0"), p1, new OffsetAndMetadata(12)),
                    Duration.ofSeconds(TIMEOUT_S));
        }

        try (KafkaConsumer<String, String> c = member(group, assignor, "second")) {
            Map<TopicPartition, OffsetAndMetadata> committed = c.committed(Set.of(p0, p1),
                    Duration.ofSeconds(TIMEOUT_S));
            assertEquals(7, committed.get(p0).offset());
            assertEquals("meta-0", committed.get(p0).metadata());
            assertEquals(12, committed.get(p1).offset());
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = pollFor(c, 13 + 8, Duration.ofSeconds(30));
            c.poll(Duration.ofMillis(300)).forEach(got::add);
            Map<Integer, List<Long>> offsets = got.stream().collect(Collectors.groupingBy(
                    ConsumerRecord::partition, TreeMap::new,
                    Collectors.mapping(ConsumerRecord::offset, Collectors.toList())));
            assertEquals(Map.of(
                    0, IntStream.range(7, 20).mapToObj(Long::valueOf).collect(Collectors.toList()),
                    1, IntStream.range(12, 20).mapToObj(Long::valueOf).collect(Collectors.toList())), offsets,
                    "the second member resumes at the committed offsets");
            for (ConsumerRecord<String, String> r : got) {
                assertEquals("p" + r.partition() + "-" + r.offset(), r.value());
            }
            c.commitSync(Duration.ofSeconds(TIMEOUT_S)); // the positions: 20 and 20
        }

        try (KafkaConsumer<String, String> c = member(group, assignor, "third")) {
            c.subscribe(List.of(topic));
            // Joins, gets both partitions, and finds nothing after the commit.
            pollUntil("the third member to be assigned", Duration.ofSeconds(30),
                    () -> c.assignment().size() == 2, new HashMap<>(), c);
            List<ConsumerRecord<String, String>> nothing = pollFor(c, 1, Duration.ofSeconds(2));
            assertTrue(nothing.isEmpty(), "records after a full commit: " + nothing);
            assertEquals(20, c.position(p0));
            assertEquals(20, c.position(p1));
            try (KafkaProducer<String, String> p = Clients.producer(BROKER.bootstrap(), map())) {
                p.send(new ProducerRecord<>(topic, 0, null, "p0-20")).get(TIMEOUT_S, TimeUnit.SECONDS);
            }
            List<ConsumerRecord<String, String>> next = pollFor(c, 1, Duration.ofSeconds(30));
            assertEquals(1, next.size());
            assertEquals(20, next.get(0).offset());
            assertEquals("p0-20", next.get(0).value());
            assertEquals(0, next.get(0).partition());
        }
    }
}
