package polystore.fiji;

import ij.ImagePlus;
import ij.ImageStack;

import java.nio.ByteBuffer;

/**
 * The hyperstack behind one image title: planes by (c, z, t), grown on demand.
 *
 * <p>Planes are kept as ImageJ pixel arrays ({@code byte[]}, {@code short[]},
 * {@code float[]}); a plane received again at the same position is decoded into
 * the existing array (no allocation), so a live stream into one image costs one
 * copy per frame. Empty positions share one blank array. All methods run under the
 * bridge's lock.
 */
final class Layer {
    final String title;
    final int width;
    final int height;
    final Header.PixelType type;
    int nC;
    int nZ;
    int nT;
    Object[] planes;
    /** Received but not yet converted planes (decoded when ImageJ needs the pixels). */
    Pending[] pending;
    private int pendingCount;
    private Object blank;
    /** The display range has not been set from real pixels yet. */
    boolean needsDisplayReset = true;
    ImagePlus imp;
    /** The stack layout changed: rebuild the ImageStack before showing. */
    boolean structureChanged = true;
    /** Pixels changed since the last draw. */
    volatile boolean dirty = true;
    long updates;
    /** The newest contrast limits [lo, hi] received for this image (null: from the pixels). */
    double[] display;
    /** Its ImagePlus was shown in a window (GUI mode). */
    volatile boolean shown;
    /** Built from indexed frames (grows) rather than replaced by plain saves. */
    boolean indexed;
    /** The lookup table of a label image (null: ImageJ's default grey). */
    ij.process.LUT lut;

    Layer(String title, int width, int height, Header.PixelType type) {
        this.title = title;
        this.width = width;
        this.height = height;
        this.type = type;
        nC = 1;
        nZ = 1;
        nT = 1;
        planes = new Object[1];
        pending = new Pending[1];
    }

    /** One plane's bytes inside a received payload. */
    static final class Pending {
        final byte[] data;
        final int offset;
        final java.nio.ByteOrder order;
        final boolean whole;
        /** Samples per pixel (RGB: 3 or 4 interleaved uint8). */
        final int samples;

        Pending(byte[] data, int offset, java.nio.ByteOrder order, boolean whole, int samples) {
            this.data = data;
            this.offset = offset;
            this.order = order;
            this.whole = whole;
            this.samples = samples;
        }
    }

    boolean fits(Header h) {
        return h.width == width && h.height == height && h.pixelType == type;
    }

    private int slot(int c, int z, int t) {
        return (t * nZ + z) * nC + c;
    }

    private void grow(int c, int z, int t) {
        int nc = Math.max(nC, c + 1);
        int nz = Math.max(nZ, z + 1);
        int nt = Math.max(nT, t + 1);
        if (nc == nC && nz == nZ && nt == nT) {
            return;
        }
        long total = (long) nc * nz * nt;
        if (total > 1000000L) {
            throw new IllegalArgumentException("hyperstack of " + total + " planes is too large");
        }
        Object[] next = new Object[(int) total];
        Pending[] nextPending = new Pending[(int) total];
        for (int tt = 0; tt < nT; tt++) {
            for (int zz = 0; zz < nZ; zz++) {
                for (int cc = 0; cc < nC; cc++) {
                    next[(tt * nz + zz) * nc + cc] = planes[slot(cc, zz, tt)];
                    nextPending[(tt * nz + zz) * nc + cc] = pending[slot(cc, zz, tt)];
                }
            }
        }
        planes = next;
        pending = nextPending;
        nC = nc;
        nZ = nz;
        nT = nt;
        structureChanged = true;
    }

    /**
     * Record the payload's planes at the header's position. Pixels are converted
     * later, by {@link #materialize}, when ImageJ needs them (window refresh, save):
     * a plane replaced before then is never converted.
     */
    /** Returns how many planes waiting for conversion were superseded (never shown). */
    int place(Header h, byte[] payload) {
        int[] base = {0, 0, 0}; // c, z, t
        Integer v;
        if ((v = h.index.get("c")) != null) {
            base[0] = v.intValue();
        }
        if ((v = h.index.get("z")) != null) {
            base[1] = v.intValue();
        }
        if ((v = h.index.get("t")) != null) {
            base[2] = v.intValue();
        }
        int lead = h.blockAxes.length;
        int[] extent = new int[lead];
        int[] which = new int[lead]; // 0=c 1=z 2=t
        long planesInBlock = 1;
        for (int i = 0; i < lead; i++) {
            extent[i] = (int) h.shape[i];
            which[i] = "czt".indexOf(h.blockAxes[i]);
            planesInBlock *= extent[i];
        }
        if (planesInBlock == 0) {
            return 0;
        }
        int superseded = 0;
        int[] last = base.clone();
        for (int i = 0; i < lead; i++) {
            last[which[i]] += extent[i] - 1;
        }
        grow(last[0], last[1], last[2]);
        int planeBytes = h.planeBytes();
        int[] counter = new int[lead];
        for (long p = 0; p < planesInBlock; p++) {
            int[] pos = base.clone();
            for (int i = 0; i < lead; i++) {
                pos[which[i]] += counter[i];
            }
            int s = slot(pos[0], pos[1], pos[2]);
            if (pending[s] == null) {
                pendingCount++;
            } else {
                superseded++;
            }
            pending[s] = new Pending(payload, (int) (p * planeBytes), h.byteOrder, planesInBlock == 1, h.samples);
            for (int i = lead - 1; i >= 0; i--) { // C order: last leading axis fastest
                if (++counter[i] < extent[i]) {
                    break;
                }
                counter[i] = 0;
            }
        }
        updates++;
        dirty = true;
        return superseded;
    }

    /** True while some planes wait for conversion. */
    boolean hasPending() {
        return pendingCount > 0;
    }

    /** Convert every waiting plane into ImageJ pixel arrays; returns true if any was converted. */
    boolean materialize() {
        if (pendingCount == 0) {
            return false;
        }
        for (int s = 0; s < pending.length; s++) {
            Pending p = pending[s];
            if (p != null) {
                planes[s] = decode(p, planes[s]);
                pending[s] = null;
            }
        }
        pendingCount = 0;
        return true;
    }

    private Object decode(Pending p, Object target) {
        byte[] payload = p.data;
        int offset = p.offset;
        boolean whole = p.whole;
        int n = width * height;
        switch (type) {
            case RGB: {
                if (target == null || target == blank) {
                    target = new int[n];
                    structureChanged = true;
                }
                int[] px = (int[]) target;
                int step = p.samples;
                for (int i = 0, o = offset; i < n; i++, o += step) {
                    px[i] = 0xff000000 | (payload[o] & 0xff) << 16 | (payload[o + 1] & 0xff) << 8 | (payload[o + 2] & 0xff);
                }
                return target;
            }
            case U8: {
                if (target == null || target == blank) {
                    if (whole && offset == 0 && payload.length == n) {
                        structureChanged = true;
                        return payload; // adopt the received buffer: zero copies
                    }
                    target = new byte[n];
                    structureChanged = true;
                }
                System.arraycopy(payload, offset, (byte[]) target, 0, n);
                return target;
            }
            case U16: {
                ByteBuffer bb = ByteBuffer.wrap(payload, offset, n * 2).order(p.order);
                if (target == null || target == blank) {
                    target = new short[n];
                    structureChanged = true;
                }
                bb.asShortBuffer().get((short[]) target);
                return target;
            }
            default: {
                ByteBuffer bb = ByteBuffer.wrap(payload, offset, n * 4).order(p.order);
                if (target == null || target == blank) {
                    target = new float[n];
                    structureChanged = true;
                }
                bb.asFloatBuffer().get((float[]) target);
                return target;
            }
        }
    }

    private Object blank() {
        if (blank == null) {
            int n = width * height;
            blank = type == Header.PixelType.U8 ? new byte[n]
                    : type == Header.PixelType.U16 ? (Object) new short[n]
                    : type == Header.PixelType.RGB ? (Object) new int[n] : new float[n];
        }
        return blank;
    }

    /** Build a fresh ImageStack in ImageJ order (c fastest, then z, then t). */
    ImageStack buildStack() {
        ImageStack stack = new ImageStack(width, height);
        for (int t = 0; t < nT; t++) {
            for (int z = 0; z < nZ; z++) {
                for (int c = 0; c < nC; c++) {
                    Object px = planes[slot(c, z, t)];
                    String label = nC * nZ * nT == 1 ? null : "c" + c + " z" + z + " t" + t;
                    stack.addSlice(label, px == null ? blank() : px);
                }
            }
        }
        return stack;
    }

    /**
     * Bring the ImagePlus up to date with the planes: a new ImagePlus the first
     * time, {@code setStack} after the layout changed. Returns true when created.
     */
    boolean syncImagePlus() {
        boolean created = false;
        if (imp == null) {
            imp = new ImagePlus(title, buildStack());
            imp.setDimensions(nC, nZ, nT);
            imp.setOpenAsHyperStack(nC * nZ * nT > 1);
            created = true;
        } else if (structureChanged) {
            boolean shown = imp.getWindow() != null;
            int c = imp.getC();
            int z = imp.getZ();
            int t = imp.getT();
            imp.setStack(buildStack(), nC, nZ, nT);
            imp.setOpenAsHyperStack(nC * nZ * nT > 1);
            if (shown) {
                imp.setPosition(Math.min(c, nC), Math.min(z, nZ), Math.min(t, nT));
            }
        }
        structureChanged = false;
        return created;
    }

    /**
     * Convert waiting planes and bring the ImagePlus up to date, with its display range
     * (caller holds the bridge's lock). Called when ImageJ needs pixels: window refresh,
     * save_tiff, screenshot.
     */
    ImagePlus forImageJ() {
        if (imp != null && shown && imp.getWindow() == null) {
            // The user closed the window: ImageJ flushed that ImagePlus's stack. The planes
            // are still here, so build a fresh ImagePlus (shown again by the refresher).
            imp = null;
            shown = false;
            structureChanged = true;
            needsDisplayReset = display == null;
        }
        materialize();
        syncImagePlus();
        if (type == Header.PixelType.RGB) {
            needsDisplayReset = false; // RGB pixels are shown as they are
        } else if (display != null) {
            imp.setDisplayRange(display[0], display[1]);
            needsDisplayReset = false;
        } else if (needsDisplayReset) {
            imp.resetDisplayRange();
            needsDisplayReset = false;
        }
        if (lut != null) {
            imp.setLut(lut);
            imp.setDisplayRange(display[0], display[1]);
        }
        return imp;
    }

    /** A plain save fits in place when its block has exactly this layer's dimensions. */
    boolean sameBlock(Header h) {
        int c = 1;
        int z = 1;
        int t = 1;
        for (int i = 0; i < h.blockAxes.length; i++) {
            char a = h.blockAxes[i];
            if (a == 'c') {
                c = (int) h.shape[i];
            } else if (a == 'z') {
                z = (int) h.shape[i];
            } else {
                t = (int) h.shape[i];
            }
        }
        return !indexed && c == nC && z == nZ && t == nT;
    }

    /** This image in the status reply. */
    java.util.Map<String, Object> describe() {
        java.util.Map<String, Object> one = new java.util.LinkedHashMap<String, Object>();
        one.put("title", title);
        one.put("width", Long.valueOf(width));
        one.put("height", Long.valueOf(height));
        one.put("channels", Long.valueOf(nC));
        one.put("slices", Long.valueOf(nZ));
        one.put("frames", Long.valueOf(nT));
        one.put("bit_depth", Long.valueOf(type.bitDepth));
        one.put("labels", Boolean.valueOf(lut != null));
        one.put("updates", Long.valueOf(updates));
        ij.gui.ImageWindow w = imp == null ? null : imp.getWindow();
        one.put("shown", Boolean.valueOf(w != null && w.isShowing()));
        return one;
    }
}
