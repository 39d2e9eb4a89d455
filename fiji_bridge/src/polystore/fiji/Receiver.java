package polystore.fiji;

import java.util.ArrayList;
import java.util.List;

import org.zeromq.ZMQ;

/**
 * The bridge's <b>receiver</b> thread: owns the PULL socket, validates each
 * message ({@link Header}; for points and shapes also the table, {@link Table}) and
 * places it: images and labels in their image ({@link Images}), points and shapes
 * as ROIs ({@link Annotations}).
 * No input stops it: every problem is counted (malformed / dropped) and remembered
 * in the bridge's {@code last_error}; a valid frame that cannot be placed is also
 * reported to its sender (the {@code rejected} request).
 */
final class Receiver implements Runnable {
    private final Bridge bridge;

    Receiver(Bridge bridge) {
        this.bridge = bridge;
    }

    /** Bind the data socket, then receive until the bridge stops. */
    public void run() {
        Bridge b = bridge;
        ZMQ.Socket pull = null;
        try {
            pull = b.ctx.socket(ZMQ.PULL);
            pull.setLinger(0);
            pull.setRcvHWM(4);
            pull.setMaxMsgSize(Integer.MAX_VALUE - 64);
            pull.setReceiveTimeOut(Bridge.POLL_MS);
            pull.bind(b.endpoint(b.port));
        } catch (Throwable t) {
            b.bindError = "cannot bind the data socket " + b.endpoint(b.port) + ": " + t;
            b.running = false;
            b.bound.countDown();
            b.bound.countDown();
            if (pull != null) {
                pull.close();
            }
            return;
        }
        b.bound.countDown();
        List<byte[]> parts = new ArrayList<byte[]>(3);
        while (b.isRunning()) {
            try {
                byte[] first = pull.recv(0);
                if (first == null) {
                    continue; // timeout: check running
                }
                parts.clear();
                parts.add(first);
                int frames = 1;
                while (pull.hasReceiveMore()) {
                    byte[] more = pull.recv(0);
                    if (more == null) {
                        break;
                    }
                    if (++frames <= 3) {
                        parts.add(more);
                    }
                }
                if (frames > 3) {
                    parts.add(null); // a fourth frame: refused by count
                }
                accept(parts);
                parts.clear(); // hold no payload while waiting for the next message (GC: 8 MB arrays are humongous)
            } catch (Throwable t) {
                if (!b.isRunning()) {
                    break;
                }
                b.malformed.incrementAndGet();
                b.error("receiver: " + t);
            }
        }
        try {
            pull.close();
        } catch (Throwable t) {
            // closing
        }
    }

    private void accept(List<byte[]> parts) throws InterruptedException {
        if (parts.size() < 2 || parts.size() > 3) {
            malformed("expected 2 frames (header, payload) or 3 (header, coordinates, table), got "
                    + (parts.size() > 3 ? "more than 3" : "1"));
            return;
        }
        byte[] payload = parts.get(1);
        Header h;
        Table table = null;
        RoiFactory rois = null;
        try {
            h = Header.parse(parts.get(0), payload.length);
            int expected = AnnotationHeader.frames(h.kind);
            if (parts.size() != expected) {
                throw new Header.Invalid(h.kind + " messages have " + expected + " frames"
                        + (expected == 3 ? " (header, coordinates, table)" : "") + ", got " + parts.size());
            }
            if (expected == 3) {
                table = Table.parse(parts.get(2), h.kind, h.shape[0], h.axes);
                rois = new RoiFactory(h.axes, payload, table);
                if (h.kind.equals("shapes")) {
                    rois.checkVertices();
                }
            }
        } catch (Header.Invalid e) {
            malformed(e.getMessage());
            return;
        }
        bridge.received.incrementAndGet();
        place(h, payload, rois);
    }

    private void malformed(String why) {
        bridge.malformed.incrementAndGet();
        bridge.error("malformed message: " + why);
    }

    /**
     * Record a valid message in its image. Cheap (no pixel conversion: see
     * {@link Layer#place}), so it runs on the receiving thread and a fast stream
     * needs no hand-off between threads.
     */
    private void place(Header h, byte[] payload, RoiFactory rois) {
        Bridge b = bridge;
        String reason = null;
        long t0 = System.nanoTime();
        try {
            String kind = h.kind;
            if (rois != null) {
                String title = h.layer != null && !h.layer.isEmpty() ? h.layer : Header.titleFromPath(h.path);
                b.annotations.place(title, kind, rois, h.index);
            } else {
                byte[] pixels = kind.equals("labels") ? LabelImages.asImage(h, payload) : payload;
                h.resolve();
                b.images.place(h, pixels, kind.equals("labels"));
                b.annotations.counted(kind);
            }
        } catch (Header.Unsupported e) {
            reason = e.getMessage();
        } catch (OutOfMemoryError e) {
            reason = "out of Java heap (start ImageJ with a larger -Xmx)";
        } catch (Throwable e) {
            reason = String.valueOf(e.getMessage() != null ? e.getMessage() : e);
        }
        b.placeNanos.addAndGet(System.nanoTime() - t0);
        if (reason != null) {
            b.error("dropped " + describe(h) + ": " + reason);
        }
        (reason == null ? b.placed : b.dropped).incrementAndGet();
        b.handled(h, reason);
    }

    private static String describe(Header h) {
        return "message " + h.seq + " of stream '" + h.stream + "' (path '" + h.path + "')";
    }
}
