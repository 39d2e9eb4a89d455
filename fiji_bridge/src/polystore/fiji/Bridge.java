package polystore.fiji;

import ij.ImagePlus;

import java.io.File;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.zeromq.ZMQ;

/**
 * The polystore receiver running inside ImageJ.
 *
 * <p>The <b>receiver</b> thread ({@link Receiver}) owns the PULL socket (bound,
 * loopback by default), validates each two-frame message and records it in its
 * image ({@link Images}, {@link Layer}): cheap bookkeeping, no pixel conversion. Pixels are converted when ImageJ needs
 * them: by the <b>refresh</b> thread (with a display) at most every
 * {@link #REFRESH_MS} ms, or by a save/screenshot request; a live frame replaced
 * before then is never converted (newest wins). The <b>control</b> thread answers
 * JSON requests on a REP socket ({@link Control}). No input can stop these threads:
 * every problem is counted (malformed / dropped) and remembered in {@code last_error};
 * a valid frame that cannot be placed is also reported to its sender (the
 * {@code rejected} request) with its stream, seq, path and reason.
 */
public final class Bridge {
    /** Newest wire-protocol version spoken (1: images; 2: labels, points, shapes). */
    public static final int PROTOCOL = 2;
    /** Version of this plugin. */
    public static final String VERSION = "0.1.0";
    /** Default PULL port; the control port defaults to this + 1. */
    public static final int DEFAULT_PORT = 5580;
    static final int REFRESH_MS = 40;
    static final int POLL_MS = 100;

    final String host;
    final int port;
    final int controlPort;
    final boolean gui;
    final OutputFolder output;

    volatile boolean running;
    final ZMQ.Context ctx = ZMQ.context(1);
    final Images images = new Images(this);
    final Annotations annotations = new Annotations(this);
    private final Streams streams = new Streams();
    final AtomicLong received = new AtomicLong();
    final AtomicLong placed = new AtomicLong();
    final AtomicLong dropped = new AtomicLong();
    final AtomicLong malformed = new AtomicLong();
    private final AtomicLong controlErrors = new AtomicLong();
    final AtomicLong placeNanos = new AtomicLong();
    final AtomicLong replaced = new AtomicLong();
    private volatile String lastError = null;
    /** Counted down once by each of the receiver and control threads when bound (twice on a failure). */
    final CountDownLatch bound = new CountDownLatch(2);
    private final CountDownLatch stopped = new CountDownLatch(1);
    volatile String bindError = null;
    private final List<Thread> threads = new ArrayList<Thread>();
    private Runnable onQuit = null;

    /**
     * @param host interface to bind ("127.0.0.1" unless the user asks otherwise)
     * @param port PULL (data) port
     * @param controlPort REP (control) port
     * @param gui true to show images in windows (needs a display)
     * @param outputDir the only folder save_tiff/screenshot write into (null: ~/polystore-fiji)
     */
    public Bridge(String host, int port, int controlPort, boolean gui, File outputDir) {
        this.host = host;
        this.port = port;
        this.controlPort = controlPort;
        this.gui = gui;
        this.output = new OutputFolder(outputDir != null ? outputDir : OutputFolder.defaultFolder());
    }

    /** Called (on the control thread) after a "quit" request was answered. */
    public void setOnQuit(Runnable r) {
        onQuit = r;
    }

    /** Bind both sockets and start the threads; throws if a port cannot be bound. */
    public synchronized void start() throws Exception {
        if (running) {
            return;
        }
        running = true;
        threads.add(daemon("polystore-receiver", new Receiver(this)));
        threads.add(daemon("polystore-control", new Runnable() {
            public void run() {
                controlLoop();
            }
        }));
        if (gui) {
            threads.add(daemon("polystore-refresh", new Runnable() {
                public void run() {
                    images.refreshLoop();
                }
            }));
        }
        if (!bound.await(10, TimeUnit.SECONDS) || bindError != null) {
            stop();
            throw new Exception(bindError != null ? bindError : "sockets did not bind within 10 s");
        }
    }

    private Thread daemon(String name, Runnable r) {
        Thread t = new Thread(r, name);
        t.setDaemon(true);
        t.start();
        return t;
    }

    /** True until {@link #stop} was called. */
    public boolean isRunning() {
        return running;
    }

    /** Stop all threads, close the sockets; images stay open. */
    public void stop() {
        running = false;
        for (Thread t : threads) {
            if (t != Thread.currentThread()) {
                try {
                    t.join(2000);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
        try {
            ctx.term();
        } catch (Throwable t) {
            // already terminated
        }
        stopped.countDown();
    }

    /** Block until {@link #stop} finished. */
    public void awaitStop() throws InterruptedException {
        stopped.await();
    }

    String endpoint(int p) {
        String h = host.contains(":") && !host.startsWith("[") ? "[" + host + "]" : host;
        return "tcp://" + h + ":" + p;
    }

    /** Remember msg as last_error. */
    void error(String msg) {
        lastError = msg;
    }

    /** Count a failed control request; {@code msg} (if any) goes to last_error. */
    void controlFailed(String msg) {
        controlErrors.incrementAndGet();
        if (msg != null) {
            error(msg);
        }
    }

    // ------------------------------------------------------------------ control

    private void controlLoop() {
        boolean quit = false;
        try {
            quit = new Control(this, output).loop(ctx, endpoint(controlPort), new Runnable() {
                public void run() {
                    bound.countDown();
                }
            });
        } catch (Throwable t) {
            if (bound.getCount() > 0) {
                bindError = "cannot bind the control socket " + endpoint(controlPort) + ": " + t;
                running = false;
                bound.countDown();
                return;
            }
            error("control: " + t);
        }
        if (quit) {
            final Runnable r = onQuit;
            new Thread(new Runnable() {
                public void run() {
                    stop();
                    if (r != null) {
                        r.run();
                    }
                }
            }, "polystore-quit").start();
        }
    }

    /** The image titled so, with its pixels up to date (caller holds the lock); null if none. */
    ImagePlus materialized(String title) {
        return images.materialized(title);
    }

    /** Forget the image titled so and close it; false if there is none. */
    boolean closeLayer(String title) {
        return annotations.close(title) | images.close(title);
    }

    /** Record that message (stream, seq) is done with (refused when reason is set); wakes "wait" requests. */
    synchronized void handled(Header h, String reason) {
        streams.handled(h, reason);
        notifyAll();
    }

    /** The "rejected" reply for a stream (see {@link Streams#rejections}). */
    synchronized Map<String, Object> rejections(String stream, long after) {
        return streams.rejections(stream, after);
    }

    /** Block (up to ms) until message seq of stream was placed, dropped or replaced; then status. */
    synchronized Map<String, Object> waitFor(String stream, long seq, long ms) {
        long deadline = System.currentTimeMillis() + ms;
        while (running) {
            if (streams.lastSeq(stream) >= seq) {
                break;
            }
            long left = deadline - System.currentTimeMillis();
            if (left <= 0) {
                Map<String, Object> m = status();
                m.put("ok", Boolean.FALSE);
                m.put("error", "timed out waiting for message " + seq + " of stream '" + stream + "'");
                return m;
            }
            try {
                wait(left);
            } catch (InterruptedException e) {
                break;
            }
        }
        return status();
    }

    synchronized Map<String, Object> status() {
        Map<String, Object> m = Control.ok();
        m.put("received", Long.valueOf(received.get()));
        m.put("placed", Long.valueOf(placed.get()));
        m.put("dropped", Long.valueOf(dropped.get()));
        m.put("rejected", Long.valueOf(dropped.get()));
        m.put("malformed", Long.valueOf(malformed.get()));
        m.put("control_errors", Long.valueOf(controlErrors.get()));
        m.put("replaced", Long.valueOf(replaced.get()));
        m.put("place_ms", Long.valueOf(placeNanos.get() / 1000000L));
        m.put("last_error", lastError);
        m.put("streams", streams.describe());
        m.put("images", images.describe());
        m.put("annotations", annotations.status());
        return m;
    }

    static long pid() {
        try {
            String name = java.lang.management.ManagementFactory.getRuntimeMXBean().getName();
            return Long.parseLong(name.substring(0, name.indexOf('@')));
        } catch (Throwable t) {
            return -1;
        }
    }
}