package polystore.fiji;

import ij.ImagePlus;

import java.io.File;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.zeromq.ZMQ;

/**
 * The polystore receiver running inside ImageJ.
 *
 * <p>The <b>receiver</b> thread owns the PULL socket (bound, loopback by default),
 * validates each two-frame message and records it in its image ({@link Layer}):
 * cheap bookkeeping, no pixel conversion. Pixels are converted when ImageJ needs
 * them: by the <b>refresh</b> thread (with a display) at most every
 * {@link #REFRESH_MS} ms, or by a save/screenshot request; a live frame replaced
 * before then is never converted (newest wins). The <b>control</b> thread answers
 * JSON requests on a REP socket ({@link Control}). No input can stop these threads:
 * every problem is counted (malformed / dropped) and remembered in {@code last_error};
 * a valid frame that cannot be placed is also reported to its sender (the
 * {@code rejected} request) with its stream, seq, path and reason.
 */
public final class Bridge {
    /** Wire-protocol version spoken. */
    public static final int PROTOCOL = 1;
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

    private volatile boolean running;
    private final ZMQ.Context ctx = ZMQ.context(1);
    private final Map<String, Layer> layers = new LinkedHashMap<String, Layer>();
    private final Streams streams = new Streams();
    private final AtomicLong received = new AtomicLong();
    private final AtomicLong placed = new AtomicLong();
    private final AtomicLong dropped = new AtomicLong();
    private final AtomicLong malformed = new AtomicLong();
    private final AtomicLong controlErrors = new AtomicLong();
    private final AtomicLong placeNanos = new AtomicLong();
    private final AtomicLong replaced = new AtomicLong();
    private volatile String lastError = null;
    private final CountDownLatch bound = new CountDownLatch(2);
    private final CountDownLatch stopped = new CountDownLatch(1);
    private volatile String bindError = null;
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
        threads.add(daemon("polystore-receiver", new Runnable() {
            public void run() {
                receiveLoop();
            }
        }));
        threads.add(daemon("polystore-control", new Runnable() {
            public void run() {
                controlLoop();
            }
        }));
        if (gui) {
            threads.add(daemon("polystore-refresh", new Runnable() {
                public void run() {
                    refreshLoop();
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

    private void error(String msg) {
        lastError = msg;
    }

    /** Count a failed control request; {@code msg} (if any) goes to last_error. */
    void controlFailed(String msg) {
        controlErrors.incrementAndGet();
        if (msg != null) {
            error(msg);
        }
    }

    // ----------------------------------------------------------------- receiver

    private void receiveLoop() {
        ZMQ.Socket pull = null;
        try {
            pull = ctx.socket(ZMQ.PULL);
            pull.setLinger(0);
            pull.setRcvHWM(4);
            pull.setMaxMsgSize(Integer.MAX_VALUE - 64);
            pull.setReceiveTimeOut(POLL_MS);
            pull.bind(endpoint(port));
        } catch (Throwable t) {
            bindError = "cannot bind the data socket " + endpoint(port) + ": " + t;
            running = false;
            bound.countDown();
            bound.countDown();
            if (pull != null) {
                pull.close();
            }
            return;
        }
        bound.countDown();
        List<byte[]> parts = new ArrayList<byte[]>(2);
        while (running) {
            try {
                byte[] first = pull.recv(0);
                if (first == null) {
                    continue; // timeout: check running
                }
                parts.clear();
                parts.add(first);
                while (pull.hasReceiveMore()) {
                    byte[] more = pull.recv(0);
                    if (more == null) {
                        break;
                    }
                    if (parts.size() < 3) {
                        parts.add(more);
                    }
                }
                accept(parts);
                parts.clear(); // hold no payload while waiting for the next message (GC: 8 MB arrays are humongous)
            } catch (Throwable t) {
                if (!running) {
                    break;
                }
                malformed.incrementAndGet();
                error("receiver: " + t);
            }
        }
        try {
            pull.close();
        } catch (Throwable t) {
            // closing
        }
    }

    private void accept(List<byte[]> parts) throws InterruptedException {
        if (parts.size() != 2) {
            malformed.incrementAndGet();
            error("malformed message: expected 2 frames (header, payload), got " + (parts.size() > 2 ? "more than 2" : "1"));
            return;
        }
        byte[] payload = parts.get(1);
        Header h;
        try {
            h = Header.parse(parts.get(0), payload.length);
        } catch (Header.Invalid e) {
            malformed.incrementAndGet();
            error("malformed message: " + e.getMessage());
            return;
        }
        received.incrementAndGet();
        place(h, payload);
    }

    // -------------------------------------------------------------------- place

    /**
     * Record a valid message in its image. Cheap (no pixel conversion: see
     * {@link Layer#place}), so it runs on the receiving thread and a fast stream
     * needs no hand-off between threads.
     */
    private void place(Header h, byte[] payload) {
        String reason = null;
        long t0 = System.nanoTime();
        try {
            h.resolve();
            placeResolved(h, payload);
        } catch (Header.Unsupported e) {
            reason = e.getMessage();
        } catch (OutOfMemoryError e) {
            reason = "out of Java heap (start ImageJ with a larger -Xmx)";
        } catch (Throwable e) {
            reason = String.valueOf(e.getMessage() != null ? e.getMessage() : e);
        }
        placeNanos.addAndGet(System.nanoTime() - t0);
        if (reason != null) {
            error("dropped " + describe(h) + ": " + reason);
        }
        (reason == null ? placed : dropped).incrementAndGet();
        handled(h, reason);
    }

    /** Record that message (stream, seq) is done with (refused when reason is set); wakes "wait" requests. */
    private synchronized void handled(Header h, String reason) {
        streams.handled(h, reason);
        notifyAll();
    }

    /** The "rejected" reply for a stream (see {@link Streams#rejections}). */
    synchronized Map<String, Object> rejections(String stream, long after) {
        return streams.rejections(stream, after);
    }

    private static String describe(Header h) {
        return "message " + h.seq + " of stream '" + h.stream + "' (path '" + h.path + "')";
    }

    private void placeResolved(Header h, byte[] payload) throws Header.Unsupported {
        ImagePlus toClose = null;
        synchronized (this) {
            Layer layer = layers.get(h.title);
            boolean plain = h.index.isEmpty();
            boolean replace = false;
            if (layer != null) {
                if (!layer.fits(h)) {
                    if (!plain && layer.indexed) {
                        // an indexed frame that does not match its hyperstack: keep the stack
                        throw new Header.Unsupported("frame " + Header.shapeString(h.shape) + " " + h.dtype
                                + (h.pixelType == Header.PixelType.RGB ? " (RGB)" : "")
                                + " does not match image '" + h.title + "' (" + layer.height + "x" + layer.width
                                + ", " + layer.type.bitDepth + "-bit); close it first to start over");
                    }
                    replace = true;
                } else if (plain && !layer.sameBlock(h)) {
                    replace = true;
                }
            }
            if (layer == null || replace) {
                Layer fresh = new Layer(h.title, h.width, h.height, h.pixelType);
                if (layer != null && layer.imp != null) {
                    if (layer.type == h.pixelType) {
                        fresh.imp = layer.imp; // keep the window; setStack swaps the pixels
                    } else {
                        toClose = layer.imp;
                    }
                }
                layer = fresh;
                layers.put(h.title, layer);
            }
            layer.indexed = !plain;
            replaced.addAndGet(layer.place(h, payload));
            double[] limits = h.contrastLimits();
            if (limits != null) {
                layer.display = limits;
            }
        }
        if (toClose != null) {
            closeImage(toClose);
        }
    }

    private void closeImage(ImagePlus imp) {
        try {
            imp.changes = false;
            imp.close();
        } catch (Throwable t) {
            error("closing '" + imp.getTitle() + "': " + t);
        }
    }

    // ------------------------------------------------------------------ refresh

    /** The layers with new pixels, converted and ready to draw (the refresh thread shows them). */
    synchronized List<Layer> takeDirty() {
        List<Layer> todo = new ArrayList<Layer>();
        for (Layer l : layers.values()) {
            if (l.dirty) {
                l.dirty = false;
                l.forImageJ();
                todo.add(l);
            }
        }
        return todo;
    }

    /** Shows new pixels at most every REFRESH_MS (GUI only): a window per image, redrawn in place. */
    private void refreshLoop() {
        while (running) {
            try {
                Thread.sleep(REFRESH_MS);
                for (Layer l : takeDirty()) {
                    ImagePlus imp = l.imp;
                    if (imp.getWindow() == null) {
                        imp.show(); // first frame, or the user closed it: new data shows it again
                        l.shown = true;
                    } else {
                        imp.updateAndDraw();
                    }
                }
            } catch (InterruptedException e) {
                break;
            } catch (Throwable t) {
                error("refresh: " + t);
            }
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
        Layer l = layers.get(title);
        return l == null ? null : l.forImageJ();
    }

    /** Forget the image titled so and close it; false if there is none. */
    boolean closeLayer(String title) {
        Layer l;
        synchronized (this) {
            l = layers.remove(title);
        }
        if (l == null) {
            return false;
        }
        if (l.imp != null) {
            closeImage(l.imp);
        }
        return true;
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
        List<Object> images = new ArrayList<Object>();
        for (Layer l : layers.values()) {
            images.add(l.describe());
        }
        m.put("images", images);
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
