package dev.polyport.kafka;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;

import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * One broker per test class (register as a static field with
 * {@code @RegisterExtension}). After the class, the broker gets SIGTERM and
 * must exit 0; its log is kept in target/broker-logs/CLASS.log.
 */
public final class BrokerExtension implements BeforeAllCallback, AfterAllCallback, TestWatcher {
    private final String extraConfig;
    private Broker broker;

    BrokerExtension(String extraConfig) {
        this.extraConfig = extraConfig;
    }

    BrokerExtension() {
        this("");
    }

    Broker broker() {
        if (broker == null) {
            throw new IllegalStateException("broker not started");
        }
        return broker;
    }

    String bootstrap() {
        return broker().bootstrap;
    }

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        broker = Broker.start(extraConfig);
    }

    @Override
    public void testFailed(ExtensionContext context, Throwable cause) {
        if (broker != null) {
            System.err.println("[" + context.getDisplayName() + "] failed; broker log tail ("
                    + broker.logFile + "):\n" + broker.logTail(40));
        }
    }

    @Override
    public void afterAll(ExtensionContext context) throws Exception {
        if (broker == null) {
            return;
        }
        int code = broker.stop();
        String log = broker.log();
        Path logDir = Paths.get(System.getProperty("polyport.logDir", "target/broker-logs"));
        Files.createDirectories(logDir);
        Files.copy(broker.logFile, logDir.resolve(context.getRequiredTestClass().getSimpleName() + ".log"),
                StandardCopyOption.REPLACE_EXISTING);
        broker.deleteDir();
        broker = null;
        if (code != 0) {
            throw new AssertionError("broker exited with " + code + " after SIGTERM:\n" + log);
        }
    }
}
