package dev.polyport.kafka;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Comparator;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * The real broker binary (target/debug/broker) with the Kafka handler
 * (target/debug/libkafka.so), as tests/python/conftest.py starts it: a temp
 * directory with protocols/libkafka.so and broker.conf, free loopback ports,
 * ready once its log says "broker ready", stopped with SIGTERM. Unlike
 * conftest.py it also binds the Pulsar port to loopback (bindAddress).
 * {@link #kill} (SIGKILL) and {@link #restart} crash it and start it again on
 * the same directory, configuration and ports.
 */
final class Broker {
    private static final long READY_TIMEOUT_MS = 30_000;
    private static final long STOP_TIMEOUT_MS = 15_000;

    final Path dir;
    final Path logFile;
    final int port;
    final int pulsarPort;
    final int webPort;
    final String bootstrap;
    private final Path binary;
    private final Path conf;
    private Process process;
    private Thread reaper;

    /**
     * The directory of the broker and libkafka.so: -Dpolyport.targetDir, else
     * $CARGO_TARGET_DIR/debug, else target/debug of the repository.
     */
    static Path targetDir() {
        String explicit = System.getProperty("polyport.targetDir", "");
        if (!explicit.isBlank()) {
            return Paths.get(explicit).toAbsolutePath().normalize();
        }
        String cargo = System.getenv("CARGO_TARGET_DIR");
        if (cargo != null && !cargo.isBlank()) {
            return Paths.get(cargo, "debug").toAbsolutePath().normalize();
        }
        String fallback = System.getProperty("polyport.defaultTargetDir", "../../../target/debug");
        return Paths.get(fallback).toAbsolutePath().normalize();
    }

    static int freePort() {
        try (ServerSocket s = new ServerSocket()) {
            s.setReuseAddress(false);
            s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private Broker(String extraConfig) throws IOException {
        Path target = targetDir();
        Path lib = target.resolve("libkafka.so");
        binary = target.resolve("broker");
        if (!Files.isRegularFile(lib) || !Files.isExecutable(binary)) {
            throw new IllegalStateException(binary + " or " + lib + " is missing: run `make build-debug`");
        }
        dir = Files.createTempDirectory("polyport-java-");
        Path protocols = Files.createDirectories(dir.resolve("protocols"));
        Files.copy(lib, protocols.resolve("libkafka.so"));
        port = freePort();
        int p;
        do {
            p = freePort();
        } while (p == port);
        pulsarPort = p;
        int w;
        do {
            w = freePort();
        } while (w == port || w == pulsarPort);
        webPort = w;
        bootstrap = "127.0.0.1:" + port;
        logFile = dir.resolve("broker.log");
        conf = dir.resolve("broker.conf");
        // extraConfig may set its own kafkaListeners, with {port} for `port`.
        extraConfig = extraConfig.replace("{port}", Integer.toString(port));
        boolean ownListeners = extraConfig.lines().anyMatch(l -> l.startsWith("kafkaListeners="));
        Files.writeString(conf, String.join("\n",
                "messagingProtocols=kafka",
                "protocolHandlerDirectory=" + protocols,
                "dataDirectory=" + dir.resolve("data"),
                "bindAddress=127.0.0.1",
                "advertisedAddress=127.0.0.1",
                ownListeners ? "" : "kafkaListeners=PLAINTEXT://127.0.0.1:" + port,
                "brokerServicePort=" + pulsarPort,
                "webServicePort=" + webPort,
                "brokerShutdownTimeoutMs=3000",
                "maxMessageSize=1048576",
                extraConfig,
                ""));
        launch();
    }

    /** Starts the binary on broker.conf, its output appended to the log. */
    private void launch() throws IOException {
        ProcessBuilder pb = new ProcessBuilder(binary.toString(), "--config", conf.toString())
                .directory(dir.toFile())
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()))
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        process = pb.start();
        // If the test JVM dies (or is killed by Surefire's timeout), the broker goes too.
        Process started = process;
        reaper = new Thread(started::destroyForcibly, "polyport-broker-reaper");
        Runtime.getRuntime().addShutdownHook(reaper);
    }

    /** Starts a broker; extraConfig is appended to broker.conf (lines of key=value). */
    static Broker start(String extraConfig) throws IOException, InterruptedException {
        Broker b = new Broker(extraConfig);
        b.awaitReady(0);
        return b;
    }

    /** Waits for "broker ready" in the log after its first `from` characters. */
    private void awaitReady(int from) throws InterruptedException {
        long deadline = System.currentTimeMillis() + READY_TIMEOUT_MS;
        while (System.currentTimeMillis() < deadline) {
            String log = log();
            if (log.length() > from && log.indexOf("broker ready", from) >= 0) {
                return;
            }
            if (!process.isAlive()) {
                throw new IllegalStateException("broker exited with " + process.exitValue() + ":\n" + log);
            }
            Thread.sleep(50);
        }
        process.destroyForcibly();
        throw new IllegalStateException("broker not ready after " + READY_TIMEOUT_MS + " ms:\n" + log());
    }

    /** SIGKILL (a crash: nothing flushed or closed), then waits until the process is gone. */
    void kill() throws InterruptedException {
        if (process == null) {
            return;
        }
        process.destroyForcibly(); // SIGKILL on Linux
        if (!process.waitFor(STOP_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
            throw new IllegalStateException("broker still running " + STOP_TIMEOUT_MS + " ms after SIGKILL");
        }
        process = null;
        try {
            Runtime.getRuntime().removeShutdownHook(reaper);
        } catch (IllegalStateException shuttingDown) {
            // the hook runs anyway
        }
    }

    /**
     * Starts the broker again after {@link #kill} or {@link #stop}: same data
     * directory, broker.conf and ports (its log goes on in the same file), and
     * waits until this run says "broker ready".
     */
    void restart() throws IOException, InterruptedException {
        if (process != null) {
            throw new IllegalStateException("broker still running");
        }
        int from = log().length();
        launch();
        awaitReady(from);
    }

    String log() {
        try {
            return Files.exists(logFile) ? new String(Files.readAllBytes(logFile), StandardCharsets.UTF_8) : "";
        } catch (IOException e) {
            return "<cannot read " + logFile + ": " + e + ">";
        }
    }

    /** The last lines of the log, for assertion messages. */
    String logTail(int lines) {
        String[] all = log().split("\n");
        int from = Math.max(0, all.length - lines);
        return String.join("\n", java.util.Arrays.copyOfRange(all, from, all.length));
    }

    /** SIGTERM, then waits; returns the exit code (or -1 after SIGKILL if it hung). */
    int stop() throws InterruptedException {
        if (process == null) {
            return 0;
        }
        process.destroy(); // SIGTERM on Linux
        int code;
        if (process.waitFor(STOP_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
            code = process.exitValue();
        } else {
            process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            code = -1;
        }
        process = null;
        try {
            Runtime.getRuntime().removeShutdownHook(reaper);
        } catch (IllegalStateException shuttingDown) {
            // the hook runs anyway
        }
        return code;
    }

    void deleteDir() {
        try (Stream<Path> paths = Files.walk(dir)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            // best effort
        }
    }
}
