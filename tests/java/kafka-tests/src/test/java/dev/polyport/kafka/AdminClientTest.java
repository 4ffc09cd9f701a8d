package dev.polyport.kafka;

import static dev.polyport.kafka.Clients.TIMEOUT_S;
import static dev.polyport.kafka.Clients.map;
import static dev.polyport.kafka.Clients.pollFor;
import static dev.polyport.kafka.Clients.unique;
import static dev.polyport.kafka.Clients.waitUntil;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** The Java AdminClient: topics, partitions, configs, cluster, consumer groups, records. */
class AdminClientTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension("groupInitialRebalanceDelayMs=0");

    private static Admin admin;

    @BeforeAll
    static void connect() {
        admin = Clients.admin(BROKER.bootstrap());
    }

    @AfterAll
    static void disconnect() {
        if (admin != null) {
            admin.close(Duration.ofSeconds(TIMEOUT_S));
        }
    }

    private static <T> T get(org.apache.kafka.common.KafkaFuture<T> f) throws Exception {
        return f.get(TIMEOUT_S, TimeUnit.SECONDS);
    }

    private static void produce(String topic, int partition, int count) throws Exception {
        try (KafkaProducer<String, String> p = Clients.producer(BROKER.bootstrap(), map())) {
            for (int i = 0; i < count; i++) {
                p.send(new ProducerRecord<>(topic, partition, null, "m" + i));
            }
            p.flush();
        }
    }

    private static Set<String> topicNames() throws Exception {
        return get(admin.listTopics().names());
    }

    @Test
    void createListDescribeAndDeleteTopics() throws Exception {
        String one = unique("adm-one");
        String three = unique("adm-three");
        get(admin.createTopics(List.of(new NewTopic(one, 1, (short) 1),
                new NewTopic(three, 3, (short) 1).configs(Map.of("retention.ms", "3600000")))).all());
        Set<String> names = topicNames();
        assertTrue(names.containsAll(Set.of(one, three)), "listTopics: " + names);

        Map<String, TopicDescription> described = get(admin.describeTopics(List.of(one, three)).allTopicNames());
        assertEquals(1, described.get(one).partitions().size());
        assertEquals(3, described.get(three).partitions().size());
        for (TopicPartitionInfo p : described.get(three).partitions()) {
            assertNotNull(p.leader(), "leader of partition " + p.partition());
            assertEquals(0, p.leader().id());
            assertEquals(List.of(0), p.replicas().stream().map(Node::id).collect(Collectors.toList()));
            assertEquals(List.of(0), p.isr().stream().map(Node::id).collect(Collectors.toList()));
        }
        assertFalse(described.get(three).isInternal());

        ExecutionException exists = assertThrows(ExecutionException.class,
                () -> get(admin.createTopics(List.of(new NewTopic(one, 1, (short) 1))).all()));
        assertInstanceOf(TopicExistsException.class, exists.getCause());

        get(admin.deleteTopics(List.of(one)).all());
        waitUntil("the deleted topic to leave listTopics", Duration.ofSeconds(20),
                () -> {
                    try {
                        return !topicNames().contains(one);
                    } catch (Exception e) {
                        throw new RuntimeException(e);
                    }
                });
        assertTrue(topicNames().contains(three));
        ExecutionException gone = assertThrows(ExecutionException.class,
                () -> get(admin.describeTopics(List.of(one)).allTopicNames()));
        assertInstanceOf(UnknownTopicOrPartitionException.class, gone.getCause());
    }

    @Test
    void createPartitionsGrowsATopic() throws Exception {
        String topic = unique("adm-grow");
        Clients.createTopic(BROKER.bootstrap(), topic, 2);
        get(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all());
        TopicDescription d = get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic);
        assertEquals(5, d.partitions().size());

        produce(topic, 4, 3);
        try (KafkaConsumer<String, String> c = Clients.consumer(BROKER.bootstrap(), map())) {
            TopicPartition p4 = new TopicPartition(topic, 4);
            c.assign(List.of(p4));
            c.seekToBeginning(List.of(p4));
            List<ConsumerRecord<String, String>> got = pollFor(c, 3, Duration.ofSeconds(30));
            assertEquals(List.of(0L, 1L, 2L), got.stream().map(ConsumerRecord::offset).collect(Collectors.toList()));
        }
        ExecutionException shrink = assertThrows(ExecutionException.class,
                () -> get(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all()));
        assertInstanceOf(InvalidPartitionsException.class, shrink.getCause());
    }

    @Test
    void describeAndIncrementallyAlterRetention() throws Exception {
        String topic = unique("adm-cfg");
        Clients.createTopic(BROKER.bootstrap(), topic, 1);
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);

        Config before = get(admin.describeConfigs(List.of(resource)).all()).get(resource);
        ConfigEntry retention = before.get("retention.ms");
        assertNotNull(retention, "retention.ms is described: " + before);
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, retention.source());
        String defaultMs = retention.value();

        get(admin.incrementalAlterConfigs(Map.of(resource, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "3600000"), AlterConfigOp.OpType.SET)))).all());
        ConfigEntry altered = get(admin.describeConfigs(List.of(resource)).all()).get(resource).get("retention.ms");
        assertEquals("3600000", altered.value());
        assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, altered.source());

        get(admin.incrementalAlterConfigs(Map.of(resource, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", null), AlterConfigOp.OpType.DELETE)))).all());
        ConfigEntry reset = get(admin.describeConfigs(List.of(resource)).all()).get(resource).get("retention.ms");
        assertEquals(defaultMs, reset.value());
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, reset.source());
    }

    @Test
    void describeClusterNamesTheOneBroker() throws Exception {
        DescribeClusterResult cluster = admin.describeCluster();
        String id = get(cluster.clusterId());
        assertNotNull(id);
        assertFalse(id.isBlank());
        Collection<Node> nodes = get(cluster.nodes());
        assertEquals(1, nodes.size(), "nodes: " + nodes);
        Node node = nodes.iterator().next();
        assertEquals(0, node.id());
        assertEquals("127.0.0.1", node.host());
        assertEquals(BROKER.broker().port, node.port());
        assertEquals(0, get(cluster.controller()).id());
    }

    @Test
    @SuppressWarnings({"deprecation", "removal"}) // listConsumerGroups is deprecated in 4.1 in favour of listGroups
    void consumerGroupsListDescribeOffsetsAlterAndDelete() throws Exception {
        String topic = unique("adm-groups");
        String group = unique("adm-group");
        Clients.createTopic(BROKER.bootstrap(), topic, 2);
        produce(topic, 0, 10);
        produce(topic, 1, 10);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);

        try (KafkaConsumer<String, String> c = Clients.consumer(BROKER.bootstrap(),
                map(ConsumerConfig.GROUP_ID_CONFIG, group, ConsumerConfig.CLIENT_ID_CONFIG, "adm-member"))) {
            c.subscribe(List.of(topic));
            assertEquals(20, pollFor(c, 20, Duration.ofSeconds(30)).size());
            c.commitSync(Map.of(p0, new OffsetAndMetadata(4), p1, new OffsetAndMetadata(9)),
                    Duration.ofSeconds(TIMEOUT_S));

            // While the member is in the group.
            Collection<GroupListing> groups = get(admin.listGroups(ListGroupsOptions.forConsumerGroups()).all());
            GroupListing listing = groups.stream().filter(g -> g.groupId().equals(group)).findFirst()
                    .orElseThrow(() -> new AssertionError(group + " not in listGroups: " + groups));
            assertEquals(GroupType.CLASSIC, listing.type().orElseThrow());
            assertEquals(GroupState.STABLE, listing.groupState().orElseThrow());
            Collection<ConsumerGroupListing> legacy = get(admin.listConsumerGroups().all());
            assertTrue(legacy.stream().anyMatch(g -> g.groupId().equals(group)), "listConsumerGroups: " + legacy);

            ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
            assertEquals(GroupState.STABLE, d.groupState());
            assertEquals(GroupType.CLASSIC, d.type());
            assertEquals("range", d.partitionAssignor());
            assertEquals(0, d.coordinator().id());
            assertEquals(1, d.members().size());
            MemberDescription m = d.members().iterator().next();
            assertEquals("adm-member", m.clientId());
            assertEquals(Set.of(p0, p1), m.assignment().topicPartitions());
        }

        Map<TopicPartition, OffsetAndMetadata> offsets = get(admin.listConsumerGroupOffsets(group)
                .partitionsToOffsetAndMetadata());
        assertEquals(Map.of(p0, 4L, p1, 9L), offsets.entrySet().stream()
                .collect(Collectors.toMap(Map.Entry::getKey, e -> e.getValue().offset())));

        // Now empty: its offsets may be altered and deleted.
        ConsumerGroupDescription empty = get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
        assertEquals(GroupState.EMPTY, empty.groupState());
        assertTrue(empty.members().isEmpty());
        get(admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(2), p1,
                new OffsetAndMetadata(10, "moved"))).all());
        offsets = get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
        assertEquals(2, offsets.get(p0).offset());
        assertEquals(10, offsets.get(p1).offset());
        assertEquals("moved", offsets.get(p1).metadata());

        get(admin.deleteConsumerGroupOffsets(group, Set.of(p0)).all());
        offsets = get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
        assertFalse(offsets.containsKey(p0) && offsets.get(p0) != null, "p0's offset was deleted: " + offsets);
        assertEquals(10, offsets.get(p1).offset());

        // A consumer of the group starts p0 from auto.offset.reset (earliest) and p1 at 10.
        try (KafkaConsumer<String, String> c = Clients.consumer(BROKER.bootstrap(),
                map(ConsumerConfig.GROUP_ID_CONFIG, group))) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = pollFor(c, 10, Duration.ofSeconds(30));
            c.poll(Duration.ofMillis(300)).forEach(got::add);
            assertEquals(10, got.size(), "p0 from 0 (10 records) and nothing from p1");
            assertTrue(got.stream().allMatch(r -> r.partition() == 0));
        }

        get(admin.deleteConsumerGroups(List.of(group)).all());
        Collection<GroupListing> after = get(admin.listGroups(ListGroupsOptions.forConsumerGroups()).all());
        assertTrue(after.stream().noneMatch(g -> g.groupId().equals(group)), "deleted group still listed: " + after);
    }

    @Test
    void deleteRecordsMovesTheLowWatermark() throws Exception {
        String topic = unique("adm-trim");
        Clients.createTopic(BROKER.bootstrap(), topic, 1);
        produce(topic, 0, 10);
        TopicPartition tp = new TopicPartition(topic, 0);
        long low = get(admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(6))).lowWatermarks().get(tp))
                .lowWatermark();
        assertEquals(6, low);
        try (KafkaConsumer<String, String> c = Clients.consumer(BROKER.bootstrap(), map())) {
            assertEquals(Map.of(tp, 6L), c.beginningOffsets(List.of(tp), Duration.ofSeconds(TIMEOUT_S)));
            assertEquals(Map.of(tp, 10L), c.endOffsets(List.of(tp), Duration.ofSeconds(TIMEOUT_S)));
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            List<ConsumerRecord<String, String>> got = pollFor(c, 4, Duration.ofSeconds(30));
            assertEquals(List.of(6L, 7L, 8L, 9L), got.stream().map(ConsumerRecord::offset)
                    .collect(Collectors.toList()));
        }
    }
}
