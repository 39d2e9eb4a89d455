package polystore.fiji;

import ij.ImagePlus;
import ij.WindowManager;
import ij.io.FileSaver;

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
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
 * JSON requests on a REP socket. No input can stop these threads: every problem is
 * counted (malformed / dropped) and remembered in {@code last_error}.
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
    static final int MAX_HEADER_BYTES = 64 * 1024;

    final String host;
    final int port;
    final int controlPort;
    final boolean gui;

    private volatile boolean running;
    private final ZMQ.Context ctx = ZMQ.context(1);
    private final Map<String, Layer> layers = new LinkedHashMap<String, Layer>();
    private final Map<String, long[]> streams = new LinkedHashMap<String, long[]>(); // {messages, last_seq}
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
     */
    public Bridge(String host, int port, int controlPort, boolean gui) {
        this.host = host;
        this.port = port;
        this.controlPort = controlPort;
        this.gui = gui;
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
        byte[] head = parts.get(0);
        byte[] payload = parts.get(1);
        Header h;
        try {
            if (head.length > MAX_HEADER_BYTES) {
                throw new Header.Invalid("header larger than " + MAX_HEADER_BYTES + " bytes");
            }
            String text;
            try {
                text = StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT)
                        .decode(ByteBuffer.wrap(head)).toString();
            } catch (CharacterCodingException e) {
                throw new Header.Invalid("header is not UTF-8");
            }
            h = Header.parse(text, payload.length);
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
        boolean ok = false;
        long t0 = System.nanoTime();
        try {
            if (!"image".equals(h.kind)) {
                throw new Header.Unsupported("message kind '" + h.kind + "' is not shown by the Fiji bridge");
            }
            h.resolve();
            placeResolved(h, payload);
            ok = true;
        } catch (Header.Unsupported e) {
            error("dropped " + describe(h) + ": " + e.getMessage());
        } catch (OutOfMemoryError e) {
            error("dropped " + describe(h) + ": out of Java heap (start ImageJ with a larger -Xmx)");
        } catch (Throwable e) {
            error("dropped " + describe(h) + ": " + e);
        }
        placeNanos.addAndGet(System.nanoTime() - t0);
        (ok ? placed : dropped).incrementAndGet();
        handled(h);
    }

    private void handled(Header h) {
        synchronized (this) {
            handledLocked(h);
        }
    }

    /** Record that message (stream, seq) is done with; wakes "wait" requests. */
    private synchronized void handledLocked(Header h) {
        long[] st = streams.get(h.stream);
        if (st == null) {
            if (streams.size() > 1000) {
                streams.clear();
            }
            st = new long[] {0, -1};
            streams.put(h.stream, st);
        }
        st[0]++;
        st[1] = Math.max(st[1], h.seq);
        notifyAll();
    }

    private static String describe(Header h) {
        return "message " + h.seq + " of stream '" + h.stream + "' (path '" + h.path + "')";
    }

    private void placeResolved(Header h, byte[] payload) {
        ImagePlus toClose = null;
        synchronized (this) {
            Layer layer = layers.get(h.title);
            boolean plain = h.index.isEmpty();
            boolean replace = false;
            if (layer != null) {
                if (!layer.fits(h)) {
                    if (!plain && layer.indexed) {
                        // an indexed frame that does not match its hyperstack: keep the stack
                        throw new IllegalArgumentException("frame " + shapeString(h.shape) + " " + h.dtype
                                + " does not match image '" + h.title + "' (" + layer.height + "x" + layer.width
                                + ", " + layer.type.bitDepth + "-bit); close it first to start over");
                    }
                    replace = true;
                } else if (plain && !sameBlock(layer, h)) {
                    replace = true;
                }
            }
            if (layer == null || replace) {
                Layer fresh = new Layer(h.title, h.shape[h.shape.length - 1], h.shape[h.shape.length - 2], h.pixelType);
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
            if (h.display != null && h.display.get("contrast_limits") != null) {
                layer.display = h.display;
            }
        }
        if (toClose != null) {
            closeImage(toClose);
        }
    }

    /**
     * Convert waiting planes and bring the layer's ImagePlus up to date (caller holds the lock).
     * Called when ImageJ needs pixels: window refresh, save_tiff, screenshot.
     */
    private ImagePlus materialize(Layer layer) {
        if (layer.imp != null && layer.shown && layer.imp.getWindow() == null) {
            // The user closed the window: ImageJ flushed that ImagePlus's stack. The planes
            // are still here, so build a fresh ImagePlus (shown again by the refresher).
            layer.imp = null;
            layer.shown = false;
            layer.structureChanged = true;
            layer.needsDisplayReset = layer.display == null;
        }
        layer.materialize();
        layer.syncImagePlus();
        ImagePlus imp = layer.imp;
        if (layer.display != null) {
            applyDisplay(imp, layer.display);
            layer.needsDisplayReset = false;
        } else if (layer.needsDisplayReset) {
            imp.resetDisplayRange();
            layer.needsDisplayReset = false;
        }
        return imp;
    }

    /** A plain save fits in place when its block has exactly the layer's dimensions. */
    private static boolean sameBlock(Layer layer, Header h) {
        int c = 1;
        int z = 1;
        int t = 1;
        for (int i = 0; i < h.blockAxes.length; i++) {
            char a = h.blockAxes[i];
            if (a == 'c') {
                c = h.shape[i];
            } else if (a == 'z') {
                z = h.shape[i];
            } else {
                t = h.shape[i];
            }
        }
        return !layer.indexed && c == layer.nC && z == layer.nZ && t == layer.nT;
    }

    private static String shapeString(int[] shape) {
        StringBuilder sb = new StringBuilder("(");
        for (int i = 0; i < shape.length; i++) {
            sb.append(i > 0 ? ", " : "").append(shape[i]);
        }
        return sb.append(")").toString();
    }

    private static void applyDisplay(ImagePlus imp, Map<String, Object> display) {
        Object lim = display.get("contrast_limits");
        if (lim instanceof List && ((List<?>) lim).size() == 2) {
            Object lo = ((List<?>) lim).get(0);
            Object hi = ((List<?>) lim).get(1);
            if (lo instanceof Number && hi instanceof Number) {
                imp.setDisplayRange(((Number) lo).doubleValue(), ((Number) hi).doubleValue());
            }
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

    private void refreshLoop() {
        List<Layer> todo = new ArrayList<Layer>();
        while (running) {
            try {
                Thread.sleep(REFRESH_MS);
                todo.clear();
                synchronized (this) {
                    for (Layer l : layers.values()) {
                        if (l.dirty) {
                            l.dirty = false;
                            materialize(l);
                            todo.add(l);
                        }
                    }
                }
                for (Layer l : todo) {
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
        ZMQ.Socket rep = null;
        try {
            rep = ctx.socket(ZMQ.REP);
            rep.setLinger(0);
            rep.setMaxMsgSize(1024 * 1024);
            rep.setReceiveTimeOut(POLL_MS);
            rep.setSendTimeOut(1000);
            rep.bind(endpoint(controlPort));
        } catch (Throwable t) {
            bindError = "cannot bind the control socket " + endpoint(controlPort) + ": " + t;
            running = false;
            bound.countDown();
            if (rep != null) {
                rep.close();
            }
            return;
        }
        bound.countDown();
        boolean quit = false;
        while (running && !quit) {
            try {
                byte[] req = rep.recv(0);
                if (req == null) {
                    continue;
                }
                boolean multi = false;
                while (rep.hasReceiveMore()) {
                    rep.recv(0);
                    multi = true;
                }
                Map<String, Object> reply;
                if (multi) {
                    reply = fail("a control request is one frame of JSON");
                } else {
                    reply = handle(req);
                }
                quit = Boolean.TRUE.equals(reply.remove("_quit"));
                rep.send(Json.write(reply).getBytes(StandardCharsets.UTF_8), 0);
            } catch (Throwable t) {
                if (!running) {
                    break;
                }
                controlErrors.incrementAndGet();
                error("control: " + t);
            }
        }
        try {
            rep.close();
        } catch (Throwable t) {
            // closing
        }
        if (quit) {
            Runnable r = onQuit;
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

    private Map<String, Object> fail(String message) {
        controlErrors.incrementAndGet();
        Map<String, Object> m = new LinkedHashMap<String, Object>();
        m.put("ok", Boolean.FALSE);
        m.put("error", message);
        return m;
    }

    private static Map<String, Object> ok() {
        Map<String, Object> m = new LinkedHashMap<String, Object>();
        m.put("ok", Boolean.TRUE);
        return m;
    }

    Map<String, Object> handle(byte[] raw) {
        Object doc;
        try {
            String text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(raw)).toString();
            doc = Json.parse(text);
        } catch (Exception e) {
            return fail("request is not UTF-8 JSON: " + e.getMessage());
        }
        if (!(doc instanceof Map) || !(((Map<?, ?>) doc).get("cmd") instanceof String)) {
            return fail("request must be a JSON object with a string 'cmd'");
        }
        Map<?, ?> req = (Map<?, ?>) doc;
        String cmd = (String) req.get("cmd");
        if (cmd.equals("ping")) {
            Map<String, Object> m = ok();
            m.put("reply", "pong");
            m.put("protocol", Long.valueOf(PROTOCOL));
            m.put("version", VERSION);
            m.put("imagej", ij.IJ.getVersion());
            m.put("gui", Boolean.valueOf(gui));
            m.put("port", Long.valueOf(port));
            m.put("control_port", Long.valueOf(controlPort));
            m.put("pid", Long.valueOf(pid()));
            return m;
        }
        if (cmd.equals("status")) {
            return status();
        }
        if (cmd.equals("wait")) {
            Object stream = req.get("stream");
            Object seq = req.get("seq");
            Object timeout = req.get("timeout_ms");
            if (!(stream instanceof String) || !(seq instanceof Long)) {
                return fail("wait needs 'stream' (string) and 'seq' (integer)");
            }
            long ms = timeout instanceof Long ? Math.max(0L, Math.min(60000L, ((Long) timeout).longValue())) : 10000L;
            return waitFor((String) stream, ((Long) seq).longValue(), ms);
        }
        if (cmd.equals("save_tiff")) {
            Object title = req.get("title");
            Object path = req.get("path");
            if (!(title instanceof String) || !(path instanceof String)) {
                return fail("save_tiff needs 'title' and 'path' strings");
            }
            return saveTiff((String) title, (String) path);
        }
        if (cmd.equals("close")) {
            Object title = req.get("title");
            if (!(title instanceof String)) {
                return fail("close needs a 'title' string");
            }
            Layer l;
            synchronized (this) {
                l = layers.remove(title);
            }
            if (l == null) {
                return fail("no image titled '" + title + "'");
            }
            if (l.imp != null) {
                closeImage(l.imp);
            }
            return ok();
        }
        if (cmd.equals("screenshot")) {
            Object title = req.get("title");
            Object path = req.get("path");
            if (!(title instanceof String) || !(path instanceof String)) {
                return fail("screenshot needs 'title' and 'path' strings");
            }
            return screenshot((String) title, (String) path);
        }
        if (cmd.equals("quit")) {
            Map<String, Object> m = ok();
            m.put("_quit", Boolean.TRUE);
            return m;
        }
        return fail("unknown command '" + cmd + "' (ping, status, wait, save_tiff, screenshot, close, quit)");
    }

    /** Block (up to ms) until message seq of stream was placed, dropped or replaced; then status. */
    private synchronized Map<String, Object> waitFor(String stream, long seq, long ms) {
        long deadline = System.currentTimeMillis() + ms;
        while (running) {
            long[] st = streams.get(stream);
            if (st != null && st[1] >= seq) {
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

    private synchronized Map<String, Object> status() {
        Map<String, Object> m = ok();
        m.put("received", Long.valueOf(received.get()));
        m.put("placed", Long.valueOf(placed.get()));
        m.put("dropped", Long.valueOf(dropped.get()));
        m.put("malformed", Long.valueOf(malformed.get()));
        m.put("control_errors", Long.valueOf(controlErrors.get()));
        m.put("replaced", Long.valueOf(replaced.get()));
        m.put("place_ms", Long.valueOf(placeNanos.get() / 1000000L));
        m.put("last_error", lastError);
        Map<String, Object> st = new LinkedHashMap<String, Object>();
        for (Map.Entry<String, long[]> e : streams.entrySet()) {
            Map<String, Object> one = new LinkedHashMap<String, Object>();
            one.put("messages", Long.valueOf(e.getValue()[0]));
            one.put("last_seq", Long.valueOf(e.getValue()[1]));
            st.put(e.getKey(), one);
        }
        m.put("streams", st);
        List<Object> images = new ArrayList<Object>();
        for (Layer l : layers.values()) {
            Map<String, Object> one = new LinkedHashMap<String, Object>();
            one.put("title", l.title);
            one.put("width", Long.valueOf(l.width));
            one.put("height", Long.valueOf(l.height));
            one.put("channels", Long.valueOf(l.nC));
            one.put("slices", Long.valueOf(l.nZ));
            one.put("frames", Long.valueOf(l.nT));
            one.put("bit_depth", Long.valueOf(l.type.bitDepth));
            one.put("updates", Long.valueOf(l.updates));
            ij.gui.ImageWindow w = l.imp == null ? null : l.imp.getWindow();
            one.put("shown", Boolean.valueOf(w != null && w.isShowing()));
            images.add(one);
        }
        m.put("images", images);
        return m;
    }

    private Map<String, Object> saveTiff(String title, String path) {
        File f = new File(path);
        if (!f.isAbsolute()) {
            return fail("save_tiff needs an absolute path, got '" + path + "'");
        }
        String lower = f.getName().toLowerCase();
        if (!lower.endsWith(".tif") && !lower.endsWith(".tiff")) {
            return fail("save_tiff writes only *.tif / *.tiff files, got '" + path + "'");
        }
        boolean saved;
        synchronized (this) { // no frame lands half-way through the file
            Layer l = layers.get(title);
            ImagePlus imp = l == null ? null : materialize(l);
            if (imp == null && gui) {
                imp = WindowManager.getImage(title);
            }
            if (imp == null) {
                return fail("no image titled '" + title + "'");
            }
            saved = new FileSaver(imp).saveAsTiff(f.getPath());
        }
        if (!saved) {
            return fail("ImageJ could not write '" + path + "'");
        }
        Map<String, Object> m = ok();
        m.put("path", f.getPath());
        return m;
    }

    /** Capture the screen area of an image's window (GUI only) and save it as TIFF or PNG. */
    private Map<String, Object> screenshot(String title, String path) {
        if (!gui) {
            return fail("screenshot needs the GUI bridge (started with a display)");
        }
        ImagePlus imp;
        synchronized (this) {
            Layer l = layers.get(title);
            imp = l == null ? null : materialize(l);
        }
        if (imp == null) {
            imp = WindowManager.getImage(title);
        }
        ij.gui.ImageWindow w = imp == null ? null : imp.getWindow();
        for (int i = 0; i < 40 && imp != null && (w == null || !w.isShowing()); i++) {
            try {
                Thread.sleep(50); // a window shown a moment ago may not be mapped yet
            } catch (InterruptedException e) {
                break;
            }
            w = imp.getWindow();
        }
        final ij.gui.ImageWindow win = w;
        if (win == null || !win.isShowing()) {
            return fail("no window shows an image titled '" + title + "'");
        }
        File f = new File(path);
        if (!f.isAbsolute()) {
            return fail("screenshot needs an absolute path, got '" + path + "'");
        }
        String lower = f.getName().toLowerCase();
        if (!lower.endsWith(".tif") && !lower.endsWith(".tiff") && !lower.endsWith(".png")) {
            return fail("screenshot writes only *.tif / *.tiff / *.png files, got '" + path + "'");
        }
        try {
            imp.updateAndDraw();
            java.awt.EventQueue.invokeAndWait(new Runnable() {
                public void run() {
                    win.toFront();
                    win.getCanvas().repaint();
                }
            });
            java.awt.Toolkit.getDefaultToolkit().sync();
            java.awt.EventQueue.invokeAndWait(new Runnable() {
                public void run() {
                }
            });
            java.awt.Rectangle r = win.getBounds();
            java.awt.image.BufferedImage shot = new java.awt.Robot().createScreenCapture(r);
            boolean ok;
            if (f.getName().toLowerCase().endsWith(".png")) {
                ok = javax.imageio.ImageIO.write(shot, "png", f);
            } else {
                ok = new FileSaver(new ImagePlus("screenshot of " + title, shot)).saveAsTiff(f.getPath());
            }
            if (!ok) {
                return fail("could not write '" + path + "'");
            }
            Map<String, Object> m = ok();
            m.put("path", f.getPath());
            m.put("window_title", win.getTitle());
            List<Object> bounds = new ArrayList<Object>();
            bounds.add(Long.valueOf(r.x));
            bounds.add(Long.valueOf(r.y));
            bounds.add(Long.valueOf(r.width));
            bounds.add(Long.valueOf(r.height));
            m.put("bounds", bounds);
            return m;
        } catch (Throwable t) {
            return fail("screenshot failed: " + t);
        }
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
