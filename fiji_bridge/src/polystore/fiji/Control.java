package polystore.fiji;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import ij.ImagePlus;
import ij.WindowManager;
import ij.io.FileSaver;

import java.io.File;
import java.math.BigInteger;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.zeromq.ZMQ;

/**
 * The control socket of the bridge: one JSON request, one JSON reply, always.
 *
 * <p>Every request gets a reply: a failing request (bad JSON, an ImageJ exception, a
 * refused path) gets {@code {"ok": false, "error": ...}}, and a reply that cannot be
 * delivered resets the socket, so the REP socket never stays waiting for a send
 * (which made a bridge stop answering and spin before).
 */
final class Control {
    private final Bridge bridge;
    private final OutputFolder output;

    Control(Bridge bridge, OutputFolder output) {
        this.bridge = bridge;
        this.output = output;
    }

    private ZMQ.Socket open(ZMQ.Context ctx, String endpoint) {
        ZMQ.Socket rep = ctx.socket(ZMQ.REP);
        try {
            rep.setLinger(0);
            rep.setMaxMsgSize(1024 * 1024); // larger: the peer is disconnected; up to this size: an error reply
            rep.setReceiveTimeOut(Bridge.POLL_MS);
            rep.setSendTimeOut(1000);
            rep.bind(endpoint);
            return rep;
        } catch (RuntimeException e) {
            rep.close(); // an unclosed socket would make ctx.term() wait forever
            throw e;
        }
    }

    /** Answer requests until the bridge stops or a quit was answered; returns true after quit. */
    boolean loop(ZMQ.Context ctx, String endpoint, Runnable bound) throws Exception {
        ZMQ.Socket rep = open(ctx, endpoint);
        bound.run();
        boolean quit = false;
        try {
            while (bridge.isRunning() && !quit) {
                byte[] req;
                try {
                    req = rep.recv(0);
                } catch (Throwable t) {
                    if (!bridge.isRunning()) {
                        break;
                    }
                    bridge.controlFailed("control receive: " + t);
                    rep = reopen(ctx, rep, endpoint);
                    continue;
                }
                if (req == null) {
                    continue;
                }
                Map<String, Object> reply;
                try {
                    boolean multi = false;
                    while (rep.hasReceiveMore()) {
                        rep.recv(0);
                        multi = true;
                    }
                    reply = multi ? fail("a control request is one frame of JSON") : handle(req);
                } catch (Throwable t) {
                    reply = fail("the request failed in the bridge: " + t);
                }
                quit = Boolean.TRUE.equals(reply.remove("_quit"));
                byte[] out;
                try {
                    out = Wire.write(reply);
                } catch (Throwable t) {
                    out = Wire.write(fail("the reply could not be encoded: " + t));
                }
                boolean sent;
                try {
                    sent = rep.send(out, 0);
                } catch (Throwable t) {
                    sent = false;
                }
                if (!sent) {
                    // A REP socket that could not send stays in its "must send" state and
                    // answers nothing again: start a fresh one on the same endpoint.
                    bridge.controlFailed("control: a reply could not be delivered; socket reset");
                    rep = reopen(ctx, rep, endpoint);
                }
            }
        } finally {
            try {
                rep.close();
            } catch (Throwable t) {
                // closing
            }
        }
        return quit;
    }

    private ZMQ.Socket reopen(ZMQ.Context ctx, ZMQ.Socket old, String endpoint) throws InterruptedException {
        try {
            old.close();
        } catch (Throwable t) {
            // closing
        }
        for (int attempt = 0; ; attempt++) {
            try {
                return open(ctx, endpoint);
            } catch (Throwable t) {
                if (attempt > 50 || !bridge.isRunning()) {
                    throw new IllegalStateException("cannot rebind the control socket " + endpoint + ": " + t);
                }
                Thread.sleep(100); // the old socket's port is released asynchronously
            }
        }
    }

    Map<String, Object> fail(String message) {
        bridge.controlFailed(null);
        Map<String, Object> m = new LinkedHashMap<String, Object>();
        m.put("ok", Boolean.FALSE);
        m.put("error", message);
        return m;
    }

    static Map<String, Object> ok() {
        Map<String, Object> m = new LinkedHashMap<String, Object>();
        m.put("ok", Boolean.TRUE);
        return m;
    }

    private static String str(JsonObject req, String key) {
        return Wire.string(req.get(key));
    }

    private static boolean flag(JsonObject req, String key) {
        JsonElement e = req.get(key);
        return e != null && e.isJsonPrimitive() && e.getAsJsonPrimitive().isBoolean() && e.getAsBoolean();
    }

    Map<String, Object> handle(byte[] raw) {
        JsonObject req;
        try {
            req = Wire.parseObject(raw, "request");
        } catch (Header.Invalid e) {
            return fail(e.getMessage());
        }
        String cmd = str(req, "cmd");
        if (cmd == null) {
            return fail("request must be a JSON object with a string 'cmd'");
        }
        if (cmd.equals("ping")) {
            Map<String, Object> m = ok();
            m.put("reply", "pong");
            m.put("protocol", Long.valueOf(Bridge.PROTOCOL));
            m.put("version", Bridge.VERSION);
            m.put("imagej", ij.IJ.getVersion());
            m.put("gui", Boolean.valueOf(bridge.gui));
            m.put("port", Long.valueOf(bridge.port));
            m.put("control_port", Long.valueOf(bridge.controlPort));
            m.put("pid", Long.valueOf(Bridge.pid()));
            m.put("output_dir", output.root().toString());
            return m;
        }
        if (cmd.equals("status")) {
            return bridge.status();
        }
        if (cmd.equals("wait")) {
            String stream = str(req, "stream");
            BigInteger seq = Wire.integer(req.get("seq"));
            BigInteger timeout = Wire.integer(req.get("timeout_ms"));
            if (stream == null || seq == null || seq.bitLength() > 62) {
                return fail("wait needs 'stream' (string) and 'seq' (integer)");
            }
            long ms = timeout == null ? 10000L : Math.max(0L, Math.min(60000L, timeout.min(BigInteger.valueOf(60000L)).longValue()));
            return bridge.waitFor(stream, seq.longValue(), ms);
        }
        if (cmd.equals("rejected")) {
            String stream = str(req, "stream");
            BigInteger after = Wire.integer(req.get("after"));
            if (stream == null) {
                return fail("rejected needs 'stream' (string) and optionally 'after' (integer)");
            }
            return bridge.rejections(stream, after == null || after.signum() < 0 ? 0L : after.min(BigInteger.valueOf(Long.MAX_VALUE)).longValue());
        }
        if (cmd.equals("save_tiff")) {
            String title = str(req, "title");
            String path = str(req, "path");
            if (title == null || path == null) {
                return fail("save_tiff needs 'title' and 'path' strings");
            }
            return saveTiff(title, path, flag(req, "overwrite"));
        }
        if (cmd.equals("rois")) {
            BigInteger limit = Wire.integer(req.get("limit"));
            return bridge.annotations.describe(str(req, "layer"),
                    limit == null || limit.signum() < 0 ? 1000 : limit.min(BigInteger.valueOf(100000)).intValue());
        }
        if (cmd.equals("close")) {
            String title = str(req, "title");
            if (title == null) {
                return fail("close needs a 'title' string");
            }
            return bridge.closeLayer(title) ? ok() : fail("no image or ROI layer titled '" + title + "'");
        }
        if (cmd.equals("screenshot")) {
            String title = str(req, "title");
            String path = str(req, "path");
            if (title == null || path == null) {
                return fail("screenshot needs 'title' and 'path' strings");
            }
            return screenshot(title, path, flag(req, "overwrite"));
        }
        if (cmd.equals("quit")) {
            Map<String, Object> m = ok();
            m.put("_quit", Boolean.TRUE);
            return m;
        }
        return fail("unknown command '" + cmd + "' (ping, status, wait, rejected, save_tiff, screenshot, close, quit)");
    }

    private Map<String, Object> saveTiff(String title, String path, final boolean overwrite) {
        final Path target;
        try {
            target = output.resolve(path, overwrite, ".tif", ".tiff");
        } catch (OutputFolder.Refused e) {
            return fail("save_tiff: " + e.getMessage());
        }
        try {
            synchronized (bridge) { // no frame lands half-way through the file
                ImagePlus found = bridge.materialized(title);
                if (found == null && bridge.gui) {
                    found = WindowManager.getImage(title);
                }
                if (found == null) {
                    return fail("no image or ROI layer titled '" + title + "'");
                }
                final ImagePlus imp = found;
                final String shownTitle = imp.getTitle();
                OutputFolder.write(target, overwrite, new OutputFolder.Writer() {
                    public boolean write(File tmp) {
                        try {
                            return new FileSaver(imp).saveAsTiff(tmp.getPath());
                        } finally {
                            imp.setTitle(shownTitle); // FileSaver renames the image after the file
                            imp.changes = false;
                        }
                    }
                });
            }
        } catch (OutputFolder.Refused e) {
            return fail("save_tiff: " + e.getMessage());
        }
        Map<String, Object> m = ok();
        m.put("path", target.toString());
        return m;
    }

    /** Capture the screen area of an image's window (GUI only) and save it as TIFF or PNG. */
    private Map<String, Object> screenshot(String title, String path, boolean overwrite) {
        if (!bridge.gui) {
            return fail("screenshot needs the GUI bridge (started with a display)");
        }
        final Path target;
        try {
            target = output.resolve(path, overwrite, ".tif", ".tiff", ".png");
        } catch (OutputFolder.Refused e) {
            return fail("screenshot: " + e.getMessage());
        }
        ImagePlus imp;
        synchronized (bridge) {
            imp = bridge.materialized(title);
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
            final java.awt.image.BufferedImage shot = new java.awt.Robot().createScreenCapture(r);
            final boolean png = target.getFileName().toString().toLowerCase().endsWith(".png");
            OutputFolder.write(target, overwrite, new OutputFolder.Writer() {
                public boolean write(File tmp) throws Exception {
                    if (png) {
                        return javax.imageio.ImageIO.write(shot, "png", tmp);
                    }
                    return new FileSaver(new ImagePlus("screenshot", shot)).saveAsTiff(tmp.getPath());
                }
            });
            Map<String, Object> m = ok();
            m.put("path", target.toString());
            m.put("window_title", win.getTitle());
            List<Object> bounds = new ArrayList<Object>();
            bounds.add(Long.valueOf(r.x));
            bounds.add(Long.valueOf(r.y));
            bounds.add(Long.valueOf(r.width));
            bounds.add(Long.valueOf(r.height));
            m.put("bounds", bounds);
            return m;
        } catch (OutputFolder.Refused e) {
            return fail("screenshot: " + e.getMessage());
        } catch (Throwable t) {
            return fail("screenshot failed: " + t);
        }
    }
}
