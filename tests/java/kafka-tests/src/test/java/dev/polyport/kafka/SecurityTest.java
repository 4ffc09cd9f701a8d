package dev.polyport.kafka;

import static dev.polyport.kafka.Clients.TIMEOUT_S;
import static dev.polyport.kafka.Clients.map;
import static dev.polyport.kafka.Clients.pollFor;
import static dev.polyport.kafka.Clients.unique;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import javax.security.auth.callback.Callback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.admin.UserScramCredentialsDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerToken;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerTokenCallback;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The Java client over SASL_SSL (issue 16): PLAIN with a token as the
 * password (KoP's convention) and OAUTHBEARER with the same token, TLS
 * verified against the test CA (PEM truststore, hostname checked), and a
 * wrong token refused with the broker's reason.
 */
class SecurityTest {
    /** A throwaway PKI and token key (tests/scripts/make-pki.sh, `broker tokens`). */
    static final Path PKI = makePki();
    static final String TOKEN = broker("tokens", "create", "--secret-key", "file://" + PKI.resolve("secret.key"),
            "--subject", "alice");
    static final String EXPIRED = broker("tokens", "create", "--secret-key", "file://" + PKI.resolve("secret.key"),
            "--subject", "alice", "--expiry-time", "0s");

    @RegisterExtension
    static final BrokerExtension BROKER = new BrokerExtension(String.join("\n",
            "kafkaListeners=SASL_SSL://127.0.0.1:{port}",
            "tlsCertificateFilePath=" + PKI.resolve("server.pem"),
            "tlsKeyFilePath=" + PKI.resolve("server.key"),
            "authenticationEnabled=true",
            "authenticationProviders=org.apache.pulsar.broker.authentication.AuthenticationProviderToken",
            "tokenSecretKey=file://" + PKI.resolve("secret.key"),
            "saslAllowedMechanisms=PLAIN,OAUTHBEARER,SCRAM-SHA-512"));

    private static Path makePki() {
        try {
            Path dir = Files.createTempDirectory("polyport-java-pki-");
            // Maven runs the tests in tests/java/kafka-tests.
            Path root = Paths.get(System.getProperty("polyport.repoRoot", "../../..")).toAbsolutePath().normalize();
            Path script = root.resolve("tests/scripts/make-pki.sh");
            run(List.of("bash", script.toString(), dir.toString()));
            broker("tokens", "create-secret-key", "--output", dir.resolve("secret.key").toString());
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static String broker(String... args) {
        List<String> command = new java.util.ArrayList<>();
        command.add(Broker.targetDir().resolve("broker").toString());
        command.addAll(List.of(args));
        return run(command);
    }

    private static String run(List<String> command) {
        try {
            Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
            if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new IllegalStateException(command + " failed: " + out);
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private static Map<String, Object> sasl(String mechanism, String jaas) {
        return map(
                "security.protocol", "SASL_SSL",
                "ssl.truststore.type", "PEM",
                "ssl.truststore.location", PKI.resolve("ca.pem").toString(),
                "sasl.mechanism", mechanism,
                "sasl.jaas.config", jaas);
    }

    private static Map<String, Object> plain(String token) {
        return sasl("PLAIN", "org.apache.kafka.common.security.plain.PlainLoginModule required "
                + "username=\"public/default\" password=\"token:" + token + "\";");
    }

    private static Map<String, Object> oauthbearer() {
        Map<String, Object> conf = sasl("OAUTHBEARER",
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;");
        conf.put("sasl.login.callback.handler.class", StaticTokenHandler.class.getName());
        return conf;
    }

    private static void roundTrip(Map<String, Object> security) throws Exception {
        String topic = unique("secure");
        try (KafkaProducer<String, String> p = Clients.producer(BROKER.bootstrap(), security)) {
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, "k" + i, "v" + i)).get(TIMEOUT_S, TimeUnit.SECONDS);
            }
        }
        Map<String, Object> consumer = new java.util.HashMap<>(security);
        try (KafkaConsumer<String, String> c = Clients.consumer(BROKER.bootstrap(), consumer)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(Set.of(tp));
            c.seekToBeginning(Set.of(tp));
            List<ConsumerRecord<String, String>> got = pollFor(c, 10, Duration.ofSeconds(30));
            assertEquals(List.of("v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9"),
                    got.stream().map(ConsumerRecord::value).collect(Collectors.toList()));
        }
    }

    @Test
    void plainWithATokenOverSaslSsl() throws Exception {
        roundTrip(plain(TOKEN));
    }

    @Test
    void oauthbearerWithTheSameToken() throws Exception {
        roundTrip(oauthbearer());
    }

    @Test
    void scramSha512UsersManagedWithTheAdminClient() throws Exception {
        try (Admin admin = Clients.admin(BROKER.bootstrap(), plain(TOKEN))) {
            admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion("carol",
                    new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), "carol-secret")))
                    .all().get(TIMEOUT_S, TimeUnit.SECONDS);
            UserScramCredentialsDescription carol = admin.describeUserScramCredentials(List.of("carol"))
                    .description("carol").get(TIMEOUT_S, TimeUnit.SECONDS);
            assertEquals(List.of(new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)),
                    carol.credentialInfos());
        }
        roundTrip(sasl("SCRAM-SHA-512", "org.apache.kafka.common.security.scram.ScramLoginModule required "
                + "username=\"carol\" password=\"carol-secret\";"));
        Map<String, Object> wrong = sasl("SCRAM-SHA-512", "org.apache.kafka.common.security.scram.ScramLoginModule "
                + "required username=\"carol\" password=\"guess\";");
        wrong.put("max.block.ms", 10_000);
        try (KafkaProducer<String, String> p = Clients.producer(BROKER.bootstrap(), wrong)) {
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> p.send(new ProducerRecord<>(unique("refused"), "x")).get(TIMEOUT_S, TimeUnit.SECONDS));
            assertInstanceOf(SaslAuthenticationException.class, e.getCause(), e.toString());
            assertTrue(e.getCause().getMessage().contains("invalid user name or password"),
                    e.getCause().getMessage());
        }
    }

    @Test
    void anExpiredTokenIsRefusedWithTheReason() throws Exception {
        Map<String, Object> conf = plain(EXPIRED);
        conf.put("max.block.ms", 10_000);
        try (KafkaProducer<String, String> p = Clients.producer(BROKER.bootstrap(), conf)) {
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> p.send(new ProducerRecord<>(unique("refused"), "x")).get(TIMEOUT_S, TimeUnit.SECONDS));
            assertInstanceOf(SaslAuthenticationException.class, e.getCause(), e.toString());
            assertTrue(e.getCause().getMessage().contains("token expired"), e.getCause().getMessage());
        }
        assertTrue(!BROKER.broker().log().contains(EXPIRED), "a token reached the broker's log");
    }

    /** Hands the client the test's token (a real deployment gets it from its OAuth server). */
    public static final class StaticTokenHandler implements AuthenticateCallbackHandler {
        @Override
        public void configure(Map<String, ?> configs, String mechanism, List<AppConfigurationEntry> entries) {
        }

        @Override
        public void handle(Callback[] callbacks) throws UnsupportedCallbackException {
            for (Callback callback : callbacks) {
                if (!(callback instanceof OAuthBearerTokenCallback)) {
                    throw new UnsupportedCallbackException(callback);
                }
                long now = System.currentTimeMillis();
                ((OAuthBearerTokenCallback) callback).token(new OAuthBearerToken() {
                    @Override
                    public String value() {
                        return TOKEN;
                    }

                    @Override
                    public Set<String> scope() {
                        return Set.of();
                    }

                    @Override
                    public long lifetimeMs() {
                        return now + 3_600_000;
                    }

                    @Override
                    public String principalName() {
                        return "alice";
                    }

                    @Override
                    public Long startTimeMs() {
                        return now;
                    }
                });
            }
        }

        @Override
        public void close() {
        }
    }
}
