package dev.polyport.kafka;

import static dev.polyport.kafka.Clients.TIMEOUT_S;
import static dev.polyport.kafka.Clients.map;
import static dev.polyport.kafka.Clients.pollFor;
import static dev.polyport.kafka.Clients.unique;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.pulsar.client.admin.PulsarAdmin;
import org.apache.pulsar.client.admin.PulsarAdminException;
import org.apache.pulsar.client.admin.PulsarAdminException.ConflictException;
import org.apache.pulsar.client.admin.PulsarAdminException.NotFoundException;
import org.apache.pulsar.client.admin.PulsarAdminException.PreconditionFailedException;
import org.apache.pulsar.client.api.Consumer;
import org.apache.pulsar.client.api.Message;
import org.apache.pulsar.client.api.MessageId;
import org.apache.pulsar.client.api.MessageIdAdv;
import org.apache.pulsar.client.api.Producer;
import org.apache.pulsar.client.api.PulsarClient;
import org.apache.pulsar.client.api.SubscriptionInitialPosition;
import org.apache.pulsar.common.policies.data.AutoTopicCreationOverride;
import org.apache.pulsar.common.policies.data.ClusterData;
import org.apache.pulsar.common.policies.data.PartitionedTopicStats;
import org.apache.pulsar.common.policies.data.PersistentTopicInternalStats;
import org.apache.pulsar.common.policies.data.Policies;
import org.apache.pulsar.common.policies.data.RetentionPolicies;
import org.apache.pulsar.common.policies.data.SubscriptionStats;
import org.apache.pulsar.common.policies.data.TenantInfo;
import org.apache.pulsar.common.policies.data.TopicStats;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Pulsar's own Java admin client (pulsar-client-admin 4.2.4) against the
 * admin REST API on webServicePort: clusters and brokers, tenants and
 * namespaces with their policies, topics and their stats, subscriptions
 * moved by skip / reset / clear / expire, lookups, and a Kafka group's
 * committed offset seen as a subscription. Messages come from Pulsar's Java
 * client on brokerServicePort (batching off: one message, one entry) and
 * from kafka-clients.
 */
class PulsarAdminTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension("groupInitialRebalanceDelayMs=0");

    private static final String CLUSTER = "standalone";

    private static PulsarAdmin admin;
    private static PulsarClient client;

    @BeforeAll
    static void connect() throws Exception {
        admin = PulsarAdmin.builder()
                .serviceHttpUrl("http://127.0.0.1:" + BROKER.broker().webPort)
                .connectionTimeout(5, TimeUnit.SECONDS)
                .readTimeout(20, TimeUnit.SECONDS)
                .requestTimeout((int) TIMEOUT_S, TimeUnit.SECONDS)
                .build();
        client = PulsarClient.builder()
                .serviceUrl("pulsar://127.0.0.1:" + BROKER.broker().pulsarPort)
                .connectionTimeout(5, TimeUnit.SECONDS)
                .operationTimeout(20, TimeUnit.SECONDS)
                .build();
    }

    @AfterAll
    static void disconnect() throws Exception {
        if (client != null) {
            client.close();
        }
        if (admin != null) {
            admin.close();
        }
    }

    // ---------------------------------------------------------------- helpers

    /** A new namespace (under a new tenant allowed on the cluster) for one test's topics. */
    private static String freshNamespace(String prefix) throws PulsarAdminException {
        String tenant = unique(prefix);
        admin.tenants().createTenant(tenant, TenantInfo.builder().allowedClusters(Set.of(CLUSTER)).build());
        String namespace = tenant + "/ns";
        admin.namespaces().createNamespace(namespace);
        return namespace;
    }

    private static String payload(int i) {
        return "m-" + i;
    }

    /** Sends count messages m-0 … m-(count-1), one entry each; returns their ids. */
    private static List<MessageId> produce(Producer<byte[]> producer, int count) throws Exception {
        List<MessageId> ids = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            ids.add(producer.send(payload(i).getBytes(StandardCharsets.UTF_8)));
        }
        return ids;
    }

    private static Producer<byte[]> producer(String topic) throws Exception {
        return client.newProducer()
                .topic(topic)
                .enableBatching(false)
                .sendTimeout(20, TimeUnit.SECONDS)
                .create();
    }

    private static String text(Message<byte[]> m) {
        return new String(m.getData(), StandardCharsets.UTF_8);
    }

    /** "ledgerId:entryId" of a message id, to compare ids of different classes. */
    private static String position(MessageId id) {
        MessageIdAdv adv = (MessageIdAdv) id;
        return adv.getLedgerId() + ":" + adv.getEntryId();
    }

    private static SubscriptionStats subscription(String topic, String sub) throws PulsarAdminException {
        TopicStats stats = admin.topics().getStats(topic);
        SubscriptionStats s = stats.getSubscriptions().get(sub);
        assertNotNull(s, "getStats(" + topic + ").subscriptions has no " + sub + ": "
                + stats.getSubscriptions().keySet());
        return s;
    }

    /** Waits (up to 10 s) for the subscription's msgBacklog to be `expected`, then asserts it. */
    private static void assertBacklog(String topic, String sub, long expected, String what) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        long backlog = subscription(topic, sub).getMsgBacklog();
        while (backlog != expected && System.nanoTime() < deadline) {
            Thread.sleep(100);
            backlog = subscription(topic, sub).getMsgBacklog();
        }
        assertEquals(expected, backlog, "msgBacklog of " + sub + " " + what);
    }

    // ------------------------------------------------------------------ tests

    @Test
    void clusterAndBrokers() throws Exception {
        assertEquals(List.of(CLUSTER), admin.clusters().getClusters());
        ClusterData cluster = admin.clusters().getCluster(CLUSTER);
        assertEquals("http://127.0.0.1:" + BROKER.broker().webPort, cluster.getServiceUrl(), "serviceUrl");
        assertEquals("pulsar://127.0.0.1:" + BROKER.broker().pulsarPort, cluster.getBrokerServiceUrl(),
                "brokerServiceUrl");
        assertThrows(NotFoundException.class, () -> admin.clusters().getCluster("no-such-cluster"));

        assertEquals(List.of("127.0.0.1:" + BROKER.broker().webPort), admin.brokers().getActiveBrokers(CLUSTER));
        admin.brokers().healthcheck();
    }

    @Test
    void tenantsAndNamespaces() throws Exception {
        String tenant = "acme";
        String namespace = "acme/orders";

        admin.tenants().createTenant(tenant, TenantInfo.builder().allowedClusters(Set.of(CLUSTER)).build());
        assertTrue(admin.tenants().getTenants().contains(tenant), "getTenants: " + admin.tenants().getTenants());
        TenantInfo info = admin.tenants().getTenantInfo(tenant);
        assertEquals(Set.of(CLUSTER), info.getAllowedClusters());
        assertThrows(ConflictException.class, () -> admin.tenants().createTenant(tenant,
                TenantInfo.builder().allowedClusters(Set.of(CLUSTER)).build()));

        admin.tenants().updateTenant(tenant, TenantInfo.builder()
                .allowedClusters(Set.of(CLUSTER)).adminRoles(Set.of("ops")).build());
        info = admin.tenants().getTenantInfo(tenant);
        assertEquals(Set.of("ops"), info.getAdminRoles());
        assertEquals(Set.of(CLUSTER), info.getAllowedClusters());
        assertThrows(NotFoundException.class, () -> admin.tenants().getTenantInfo("no-such-tenant"));

        admin.namespaces().createNamespace(namespace);
        assertEquals(List.of(namespace), admin.namespaces().getNamespaces(tenant));
        assertThrows(ConflictException.class, () -> admin.namespaces().createNamespace(namespace));
        assertThrows(NotFoundException.class, () -> admin.namespaces().createNamespace("no-such-tenant/ns"));
        assertThrows(NotFoundException.class, () -> admin.namespaces().getPolicies(tenant + "/missing"));
        assertThrows(NotFoundException.class, () -> admin.namespaces().getRetention(tenant + "/missing"));

        // Retention, TTL, auto topic creation: set, read back, in the policies.
        RetentionPolicies retention = new RetentionPolicies(60, 100);
        admin.namespaces().setRetention(namespace, retention);
        assertEquals(retention, admin.namespaces().getRetention(namespace));
        admin.namespaces().setNamespaceMessageTTL(namespace, 120);
        assertEquals(120, admin.namespaces().getNamespaceMessageTTL(namespace));
        AutoTopicCreationOverride autoCreate = AutoTopicCreationOverride.builder()
                .allowAutoTopicCreation(true).topicType("partitioned").defaultNumPartitions(2).build();
        admin.namespaces().setAutoTopicCreation(namespace, autoCreate);
        assertEquals(autoCreate, admin.namespaces().getAutoTopicCreation(namespace));

        Policies policies = admin.namespaces().getPolicies(namespace);
        assertEquals(retention, policies.retention_policies);
        assertEquals(120, policies.message_ttl_in_seconds);
        assertEquals(autoCreate, policies.autoTopicCreationOverride);

        // Removed: the getters answer nothing (Pulsar: 204, null), the policies lose them.
        admin.namespaces().removeNamespaceMessageTTL(namespace);
        assertNull(admin.namespaces().getNamespaceMessageTTL(namespace), "TTL after remove");
        admin.namespaces().removeAutoTopicCreation(namespace);
        assertNull(admin.namespaces().getAutoTopicCreation(namespace), "autoTopicCreation after remove");
        policies = admin.namespaces().getPolicies(namespace);
        assertNull(policies.message_ttl_in_seconds, "policies' TTL after remove");
        assertNull(policies.autoTopicCreationOverride, "policies' autoTopicCreation after remove");
        assertEquals(retention, policies.retention_policies, "retention stays");
        admin.namespaces().removeRetention(namespace);
        assertNull(admin.namespaces().getRetention(namespace), "retention after remove");

        // A namespace with a topic, a tenant with a namespace: not deleted.
        String topic = "persistent://" + namespace + "/t1";
        admin.topics().createNonPartitionedTopic(topic);
        assertThrows(ConflictException.class, () -> admin.namespaces().deleteNamespace(namespace));
        assertThrows(ConflictException.class, () -> admin.tenants().deleteTenant(tenant));
        assertTrue(admin.namespaces().getNamespaces(tenant).contains(namespace));

        admin.topics().delete(topic);
        admin.namespaces().deleteNamespace(namespace);
        assertEquals(List.of(), admin.namespaces().getNamespaces(tenant));
        assertThrows(NotFoundException.class, () -> admin.namespaces().getPolicies(namespace));
        assertThrows(NotFoundException.class, () -> admin.namespaces().deleteNamespace(namespace));
        admin.tenants().deleteTenant(tenant);
        assertFalse(admin.tenants().getTenants().contains(tenant));
        assertThrows(NotFoundException.class, () -> admin.tenants().getTenantInfo(tenant));
    }

    @Test
    void topicsAndStats() throws Exception {
        String namespace = freshNamespace("retail");
        String plain = "persistent://" + namespace + "/plain";
        String parted = "persistent://" + namespace + "/parted";
        int n = 100;

        admin.topics().createNonPartitionedTopic(plain);
        admin.topics().createPartitionedTopic(parted, 3);
        assertThrows(ConflictException.class, () -> admin.topics().createNonPartitionedTopic(plain));
        assertThrows(ConflictException.class, () -> admin.topics().createPartitionedTopic(parted, 3));
        assertThrows(ConflictException.class, () -> admin.topics().createNonPartitionedTopic(parted));

        assertEquals(new TreeSet<>(List.of(plain, parted + "-partition-0", parted + "-partition-1",
                parted + "-partition-2")), new TreeSet<>(admin.topics().getList(namespace)), "getList");
        assertEquals(List.of(parted), admin.topics().getPartitionedTopicList(namespace));
        assertEquals(3, admin.topics().getPartitionedTopicMetadata(parted).partitions);
        assertEquals(0, admin.topics().getPartitionedTopicMetadata(plain).partitions, "a non-partitioned topic");

        admin.topics().updatePartitionedTopic(parted, 4);
        assertEquals(4, admin.topics().getPartitionedTopicMetadata(parted).partitions);
        assertTrue(admin.topics().getList(namespace).contains(parted + "-partition-3"),
                "getList after the update: " + admin.topics().getList(namespace));

        // A subscription at the start, then n messages.
        admin.topics().createSubscription(plain, "sub", MessageId.earliest);
        assertEquals(List.of("sub"), admin.topics().getSubscriptions(plain));
        assertThrows(ConflictException.class,
                () -> admin.topics().createSubscription(plain, "sub", MessageId.earliest));
        List<MessageId> ids;
        try (Producer<byte[]> producer = producer(plain)) {
            ids = produce(producer, n);

            TopicStats stats = admin.topics().getStats(plain);
            assertEquals(n, stats.getMsgInCounter(), "msgInCounter");
            long payloadBytes = IntStream.range(0, n).map(i -> payload(i).length()).sum();
            assertTrue(stats.getBytesInCounter() >= payloadBytes,
                    "bytesInCounter " + stats.getBytesInCounter() + " < " + payloadBytes);
            assertTrue(stats.getStorageSize() >= payloadBytes,
                    "storageSize " + stats.getStorageSize() + " < " + payloadBytes);
            assertEquals(1, stats.getPublishers().size(), "publishers while the producer is open");
            assertEquals(Set.of("sub"), stats.getSubscriptions().keySet());
            assertEquals(n, stats.getSubscriptions().get("sub").getMsgBacklog(), "msgBacklog");
            assertEquals(0, stats.getSubscriptions().get("sub").getConsumers().size(), "no consumer yet");
        }

        PersistentTopicInternalStats internal = admin.topics().getInternalStats(plain);
        assertEquals(n, internal.entriesAddedCounter, "entriesAddedCounter");
        assertEquals(n, internal.numberOfEntries, "numberOfEntries");
        assertTrue(internal.totalSize > 0, "totalSize");
        assertNotNull(internal.ledgers, "ledgers");
        assertFalse(internal.ledgers.isEmpty(), "ledgers");
        assertNotNull(internal.cursors, "cursors");
        assertTrue(internal.cursors.containsKey("sub"), "cursors: " + internal.cursors.keySet());
        assertNotNull(internal.cursors.get("sub").markDeletePosition, "markDeletePosition");
        assertNotNull(internal.cursors.get("sub").readPosition, "readPosition");

        MessageId last = admin.topics().getLastMessageId(plain);
        assertNotEquals(position(MessageId.earliest), position(last));
        assertEquals(position(ids.get(n - 1)), position(last), "lastMessageId is the last message sent");

        Message<byte[]> first = admin.topics().examineMessage(plain, "earliest", 1);
        assertEquals(payload(0), text(first));
        assertEquals(position(ids.get(0)), position(first.getMessageId()), "X-Pulsar-Message-ID");
        assertTrue(first.getPublishTime() > 0, "X-Pulsar-publish-time");
        assertEquals(payload(n - 1), text(admin.topics().examineMessage(plain, "latest", 1)));
        assertEquals(payload(2), text(admin.topics().examineMessage(plain, "earliest", 3)));

        List<Message<byte[]>> peeked = admin.topics().peekMessages(plain, "sub", 1);
        assertEquals(List.of(payload(0)), peeked.stream().map(PulsarAdminTest::text).collect(Collectors.toList()));
        peeked = admin.topics().peekMessages(plain, "sub", 3);
        assertEquals(List.of(payload(0), payload(1), payload(2)),
                peeked.stream().map(PulsarAdminTest::text).collect(Collectors.toList()));

        // A consumer takes and acknowledges 10: out counters and the backlog follow.
        try (Consumer<byte[]> consumer = client.newConsumer()
                .topic(plain)
                .subscriptionName("sub")
                .acknowledgmentGroupTime(0, TimeUnit.MILLISECONDS)
                .receiverQueueSize(10)
                .subscribe()) {
            for (int i = 0; i < 10; i++) {
                Message<byte[]> m = consumer.receive(20, TimeUnit.SECONDS);
                assertNotNull(m, "message " + i);
                assertEquals(payload(i), text(m));
                consumer.acknowledge(m);
            }
            assertBacklog(plain, "sub", n - 10, "after 10 acknowledged");
            assertEquals(1, subscription(plain, "sub").getConsumers().size(), "consumers while subscribed");
        }
        TopicStats stats = admin.topics().getStats(plain);
        assertTrue(stats.getMsgOutCounter() >= 10, "msgOutCounter " + stats.getMsgOutCounter());
        assertTrue(stats.getBytesOutCounter() > 0, "bytesOutCounter");

        // The partitioned topic: 40 messages spread over its 4 partitions.
        try (Producer<byte[]> producer = producer(parted)) {
            produce(producer, 40);
        }
        PartitionedTopicStats ps = admin.topics().getPartitionedStats(parted, true);
        assertEquals(4, ps.getMetadata().partitions, "metadata.partitions");
        assertEquals(IntStream.range(0, 4).mapToObj(i -> parted + "-partition-" + i).collect(Collectors.toSet()),
                ps.getPartitions().keySet(), "per-partition stats");
        long sum = ps.getPartitions().values().stream().mapToLong(TopicStats::getMsgInCounter).sum();
        assertEquals(40, sum, "sum of the partitions' msgInCounter");
        assertEquals(40, ps.getMsgInCounter(), "aggregated msgInCounter");
        assertTrue(ps.getPartitions().values().stream().filter(p -> p.getMsgInCounter() > 0).count() > 1,
                "the messages went to more than one partition");

        // Deletes.
        admin.topics().delete(plain);
        assertFalse(admin.topics().getList(namespace).contains(plain));
        assertThrows(NotFoundException.class, () -> admin.topics().getStats(plain));
        assertThrows(NotFoundException.class, () -> admin.topics().delete(plain));
        admin.topics().deletePartitionedTopic(parted);
        assertEquals(List.of(), admin.topics().getPartitionedTopicList(namespace));
        assertEquals(List.of(), admin.topics().getList(namespace));
        assertThrows(NotFoundException.class, () -> admin.topics().deletePartitionedTopic(parted));
        assertThrows(NotFoundException.class,
                () -> admin.topics().delete("persistent://" + namespace + "/never-created"));
    }

    @Test
    void subscriptions() throws Exception {
        String namespace = freshNamespace("subs");
        String topic = "persistent://" + namespace + "/cursor";
        int n = 100;
        admin.topics().createNonPartitionedTopic(topic);
        admin.topics().createSubscription(topic, "s", MessageId.earliest);
        long beforeProduce = System.currentTimeMillis();
        Thread.sleep(50);
        List<MessageId> ids;
        try (Producer<byte[]> producer = producer(topic)) {
            ids = produce(producer, n);
        }
        // A subscription created at the end has nothing to read.
        admin.topics().createSubscription(topic, "late", MessageId.latest);
        assertBacklog(topic, "late", 0, "created at latest");
        assertBacklog(topic, "s", n, "created at earliest before producing");

        admin.topics().skipMessages(topic, "s", 10);
        assertBacklog(topic, "s", n - 10, "after skipping 10");
        assertEquals(payload(10), text(admin.topics().peekMessages(topic, "s", 1).get(0)));

        admin.topics().resetCursor(topic, "s", beforeProduce);
        assertBacklog(topic, "s", n, "after a reset to a time before the first message");

        // Reset to the 50th message (index 49): it is the next delivered, so 51 remain.
        admin.topics().resetCursor(topic, "s", MessageId.fromByteArray(ids.get(49).toByteArray()));
        assertBacklog(topic, "s", n - 49, "after a reset to the id of message 49");
        assertEquals(payload(49), text(admin.topics().peekMessages(topic, "s", 1).get(0)));

        admin.topics().skipAllMessages(topic, "s"); // clear-backlog
        assertBacklog(topic, "s", 0, "after clearing the backlog");
        assertTrue(admin.topics().peekMessages(topic, "s", 1).isEmpty(), "nothing to peek");

        // Expiry: nothing is an hour old, everything is a second old.
        admin.topics().resetCursor(topic, "s", beforeProduce);
        assertBacklog(topic, "s", n, "after a reset to the start");
        admin.topics().expireMessages(topic, "s", 3600);
        assertBacklog(topic, "s", n, "after expiring what is older than an hour");
        Thread.sleep(2000);
        admin.topics().expireMessages(topic, "s", 1);
        assertBacklog(topic, "s", 0, "after expiring what is older than 1 s");

        // Unknown subscription or topic.
        assertThrows(NotFoundException.class, () -> admin.topics().skipMessages(topic, "no-such-sub", 1));
        assertThrows(NotFoundException.class, () -> admin.topics().resetCursor(topic, "no-such-sub", 0L));
        assertThrows(NotFoundException.class,
                () -> admin.topics().getSubscriptions("persistent://" + namespace + "/no-such-topic"));

        // Deleting a subscription: refused while a consumer is connected, unless forced.
        try (Consumer<byte[]> consumer = client.newConsumer().topic(topic).subscriptionName("live")
                .subscriptionInitialPosition(SubscriptionInitialPosition.Earliest).subscribe()) {
            assertEquals(1, subscription(topic, "live").getConsumers().size(), "consumers of live");
            assertThrows(PreconditionFailedException.class,
                    () -> admin.topics().deleteSubscription(topic, "live"));
            assertTrue(admin.topics().getSubscriptions(topic).contains("live"));
        }
        admin.topics().deleteSubscription(topic, "live");
        assertFalse(admin.topics().getSubscriptions(topic).contains("live"),
                "subscriptions: " + admin.topics().getSubscriptions(topic));
        assertThrows(NotFoundException.class, () -> admin.topics().deleteSubscription(topic, "live"));

        // Forced: accepted although a consumer is connected. (The Java consumer, disconnected,
        // reconnects and may subscribe again, so what the list says afterwards is not checked.)
        try (Consumer<byte[]> forced = client.newConsumer().topic(topic).subscriptionName("forced").subscribe()) {
            admin.topics().deleteSubscription(topic, "forced", true);
        }
        List<String> left = admin.topics().getSubscriptions(topic);
        assertTrue(left.containsAll(List.of("s", "late")) && !left.contains("live"), "subscriptions: " + left);
    }

    @Test
    void kafkaGroupAsSubscription() throws Exception {
        String name = unique("kgroup");
        String topic = "persistent://public/default/" + name;
        try (KafkaProducer<String, String> p = Clients.producer(BROKER.bootstrap(),
                map(ProducerConfig.LINGER_MS_CONFIG, 0))) {
            for (int i = 0; i < 10; i++) {
                // One batch each: the backlog counts the same in records and entries.
                p.send(new ProducerRecord<>(name, "k" + i, "v" + i)).get(TIMEOUT_S, TimeUnit.SECONDS);
            }
        }
        TopicPartition tp = new TopicPartition(name, 0);
        try (KafkaConsumer<String, String> c = Clients.consumer(BROKER.bootstrap(), map("group.id", "g1"))) {
            c.subscribe(List.of(name));
            List<ConsumerRecord<String, String>> got = pollFor(c, 10, Duration.ofSeconds(30));
            assertEquals(10, got.size(), "records consumed");
            c.commitSync(Map.of(tp, new OffsetAndMetadata(4)), Duration.ofSeconds(TIMEOUT_S));
        }

        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        List<String> subs = admin.topics().getSubscriptions(topic);
        while (!subs.contains("g1") && System.nanoTime() < deadline) {
            Thread.sleep(200);
            subs = admin.topics().getSubscriptions(topic);
        }
        if (!subs.contains("g1")) {
            fail("the group g1 is not a subscription of " + topic + ": " + subs);
        }
        assertBacklog(topic, "g1", 6, "of the Kafka group that committed offset 4 of 10");
        assertEquals(10, admin.topics().getStats(topic).getMsgInCounter(), "msgInCounter of the Kafka topic");
    }

    @Test
    void lookup() throws Exception {
        String namespace = freshNamespace("lookup");
        String topic = "persistent://" + namespace + "/where";
        admin.topics().createNonPartitionedTopic(topic);
        assertEquals("pulsar://127.0.0.1:" + BROKER.broker().pulsarPort, admin.lookups().lookupTopic(topic));
    }
}
