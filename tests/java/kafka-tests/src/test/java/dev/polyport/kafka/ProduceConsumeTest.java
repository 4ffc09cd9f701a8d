package dev.polyport.kafka;

import static dev.polyport.kafka.Clients.TIMEOUT_S;
import static dev.polyport.kafka.Clients.map;
import static dev.polyport.kafka.Clients.pollFor;
import static dev.polyport.kafka.Clients.unique;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** KafkaProducer and KafkaConsumer round trips: idempotence, codecs, offsetsForTimes. */
class ProduceConsumeTest {
    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension();

    private static List<TopicPartition> partitions(String topic, int n) {
        return IntStream.range(0, n).mapToObj(p -> new TopicPartition(topic, p)).collect(Collectors.toList());
    }

    /** Reads everything from the beginning of the given partitions, with a manual assignment. */
    private static List<ConsumerRecord<String, String>> readAll(String topic, int partitionCount, int expected) {
        try (KafkaConsumer<String, String> c = Clients.consumer(BROKER.bootstrap(), map())) {
            List<TopicPartition> tps = partitions(topic, partitionCount);
            c.assign(tps);
            c.seekToBeginning(tps);
            List<ConsumerRecord<String, String>> got = pollFor(c, expected, Duration.ofSeconds(60));
            // A duplicate or a stray record would show up as more than expected.
            c.poll(Duration.ofMillis(500)).forEach(got::add);
            return got;
        }
    }

    @Test
    void idempotentProducerDefaultsKeepEveryRecordOnceAndInOrder() throws Exception {
        String topic = unique("idempotent");
        int partitionCount = 4;
        int total = 10_000;
        Clients.createTopic(BROKER.bootstrap(), topic, partitionCount);

        // Defaults: enable.idempotence=true, acks=all, max.in.flight.requests.per.connection=5.
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        int[] perPartition = new int[partitionCount];
        try (KafkaProducer<String, String> producer = Clients.producer(BROKER.bootstrap(), map())) {
            for (int i = 0; i < total; i++) {
                int p = i % partitionCount;
                int seq = perPartition[p]++;
                String value = "p" + p + "-" + seq + "-" + "x".repeat(i % 300);
                sent.add(producer.send(new ProducerRecord<>(topic, p, "k" + i, value)));
            }
            producer.flush();
        }
        long[] nextOffset = new long[partitionCount];
        for (int i = 0; i < total; i++) {
            RecordMetadata md = sent.get(i).get(TIMEOUT_S, TimeUnit.SECONDS);
            int p = i % partitionCount;
            assertEquals(p, md.partition());
            assertEquals(nextOffset[p]++, md.offset(), "offset of record " + i + " as acknowledged");
        }

        List<ConsumerRecord<String, String>> got = readAll(topic, partitionCount, total);
        assertEquals(total, got.size(), "records read back (duplicates or losses)");
        Map<Integer, List<ConsumerRecord<String, String>>> byPartition = got.stream()
                .collect(Collectors.groupingBy(ConsumerRecord::partition));
        Set<String> seen = new HashSet<>();
        for (int p = 0; p < partitionCount; p++) {
            List<ConsumerRecord<String, String>> records = byPartition.getOrDefault(p, List.of());
            assertEquals(perPartition[p], records.size(), "records in partition " + p);
            for (int seq = 0; seq < records.size(); seq++) {
                ConsumerRecord<String, String> r = records.get(seq);
                assertEquals(seq, r.offset(), "offsets of partition " + p + " are dense");
                int i = seq * partitionCount + p;
                assertEquals("k" + i, r.key());
                assertEquals("p" + p + "-" + seq + "-" + "x".repeat(i % 300), r.value(),
                        "partition " + p + " keeps send order");
                assertTrue(seen.add(r.value()), "duplicate " + r.value());
            }
        }
    }

    @ParameterizedTest(name = "compression.type={0}")
    @ValueSource(strings = {"none", "gzip", "snappy", "lz4", "zstd"})
    void acksAllRoundTripsEachCodec(String codec) throws Exception {
        String topic = unique("codec-" + codec);
        int partitionCount = 2;
        int total = 600;
        Clients.createTopic(BROKER.bootstrap(), topic, partitionCount);
        long baseTs = System.currentTimeMillis() - 60_000;

        List<ProducerRecord<String, String>> records = new ArrayList<>();
        for (int i = 0; i < total; i++) {
            String key = i % 10 == 0 ? null : "key-" + (i % 13);
            // Compressible and less compressible values, some long enough to span many bytes.
            String value = i % 3 == 0 ? ("repeat-" + codec + "-").repeat(1 + i % 50)
                    : Integer.toHexString(Integer.rotateLeft(i * 0x9E3779B9, i % 31)) + "-" + i;
            List<Header> headers = i % 4 == 0
                    ? List.of(new RecordHeader("h", ("hv" + i).getBytes(StandardCharsets.UTF_8)),
                              new RecordHeader("empty", new byte[0]))
                    : List.of();
            records.add(new ProducerRecord<>(topic, i % partitionCount, baseTs + i, key, value, headers));
        }
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        try (KafkaProducer<String, String> producer = Clients.producer(BROKER.bootstrap(),
                map(ProducerConfig.ACKS_CONFIG, "all",
                    ProducerConfig.COMPRESSION_TYPE_CONFIG, codec,
                    ProducerConfig.LINGER_MS_CONFIG, 20,
                    ProducerConfig.BATCH_SIZE_CONFIG, 32 * 1024))) {
            for (ProducerRecord<String, String> r : records) {
                sent.add(producer.send(r));
            }
            producer.flush();
        }
        for (Future<RecordMetadata> f : sent) {
            f.get(TIMEOUT_S, TimeUnit.SECONDS);
        }

        List<ConsumerRecord<String, String>> got = readAll(topic, partitionCount, total);
        assertEquals(total, got.size(), "records read back with " + codec);
        Map<Integer, List<ConsumerRecord<String, String>>> byPartition = got.stream()
                .collect(Collectors.groupingBy(ConsumerRecord::partition));
        for (int p = 0; p < partitionCount; p++) {
            List<ConsumerRecord<String, String>> part = byPartition.getOrDefault(p, List.of());
            assertEquals(total / partitionCount, part.size(), "partition " + p);
            for (int seq = 0; seq < part.size(); seq++) {
                ProducerRecord<String, String> want = records.get(seq * partitionCount + p);
                ConsumerRecord<String, String> r = part.get(seq);
                assertEquals(seq, r.offset());
                assertEquals(want.key(), r.key());
                assertEquals(want.value(), r.value());
                assertEquals(want.timestamp(), r.timestamp());
                assertEquals(TimestampType.CREATE_TIME, r.timestampType());
                Header[] headers = r.headers().toArray();
                Header[] wantHeaders = want.headers().toArray();
                assertEquals(wantHeaders.length, headers.length, "headers of offset " + r.offset());
                for (int h = 0; h < headers.length; h++) {
                    assertEquals(wantHeaders[h].key(), headers[h].key());
                    assertArrayEquals(wantHeaders[h].value(), headers[h].value());
                }
            }
        }
    }

    @Test
    void offsetsForTimesFindsTheFirstRecordAtOrAfterATime() throws Exception {
        String topic = unique("times");
        Clients.createTopic(BROKER.bootstrap(), topic, 2);
        long base = System.currentTimeMillis() - 3_600_000;
        try (KafkaProducer<String, String> producer = Clients.producer(BROKER.bootstrap(),
                map(ProducerConfig.LINGER_MS_CONFIG, 1000, ProducerConfig.BATCH_SIZE_CONFIG, 64 * 1024))) {
            // Partition 0: one batch per record (flush after each).
            for (int i = 0; i < 10; i++) {
                Future<RecordMetadata> f = producer.send(new ProducerRecord<>(topic, 0, base + i * 1000L, null, "a" + i));
                producer.flush();
                f.get(TIMEOUT_S, TimeUnit.SECONDS);
            }
            // Partition 1: all ten records in one batch (linger, then a single flush).
            List<Future<RecordMetadata>> batch = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                batch.add(producer.send(new ProducerRecord<>(topic, 1, base + i * 1000L, null, "b" + i)));
            }
            producer.flush();
            for (Future<RecordMetadata> f : batch) {
                f.get(TIMEOUT_S, TimeUnit.SECONDS);
            }
        }
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaConsumer<String, String> c = Clients.consumer(BROKER.bootstrap(), map())) {
            for (TopicPartition tp : List.of(p0, p1)) {
                Map<TopicPartition, OffsetAndTimestamp> found = c.offsetsForTimes(Map.of(tp, base + 3500),
                        Duration.ofSeconds(TIMEOUT_S));
                assertNotNull(found.get(tp), "a record at or after base+3500 in " + tp);
                assertEquals(4, found.get(tp).offset(), "first offset at or after base+3500 in " + tp);
                assertEquals(base + 4000, found.get(tp).timestamp());

                found = c.offsetsForTimes(Map.of(tp, base + 7000), Duration.ofSeconds(TIMEOUT_S));
                assertEquals(7, found.get(tp).offset(), "exact timestamp in " + tp);
                assertEquals(base + 7000, found.get(tp).timestamp());

                found = c.offsetsForTimes(Map.of(tp, base - 100_000), Duration.ofSeconds(TIMEOUT_S));
                assertEquals(0, found.get(tp).offset(), "a time before everything in " + tp);
                assertEquals(base, found.get(tp).timestamp());

                found = c.offsetsForTimes(Map.of(tp, base + 10_000), Duration.ofSeconds(TIMEOUT_S));
                assertNull(found.get(tp), "no record at or after the last timestamp + 1s in " + tp);
            }
            // Both partitions in one request, and seeking to what was found.
            Map<TopicPartition, OffsetAndTimestamp> both = c.offsetsForTimes(
                    Map.of(p0, base + 5000, p1, base + 8001), Duration.ofSeconds(TIMEOUT_S));
            assertEquals(5, both.get(p0).offset());
            assertEquals(9, both.get(p1).offset());
            c.assign(List.of(p0, p1));
            c.seek(p0, both.get(p0).offset());
            c.seek(p1, both.get(p1).offset());
            List<String> values = pollFor(c, 6, Duration.ofSeconds(30)).stream()
                    .map(ConsumerRecord::value).sorted().collect(Collectors.toList());
            assertEquals(List.of("a5", "a6", "a7", "a8", "a9", "b9"), values);
        }
    }
}
