package polystore.fiji;

import ij.process.LUT;

import java.awt.Color;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Label images in ImageJ: the pixel type a labels message becomes and the
 * glasbey-style lookup table it is shown with (docs/fiji-bridge.md, "Annotations").
 *
 * <p>uint8 and bool labels become 8-bit images, uint16 labels 16-bit; other integer
 * labels become 16-bit when every value lies in [0, 65535], else 32-bit float when
 * every value lies in [-2^24, 2^24] (exact there), else the message is dropped. Pixel
 * values are never changed. The LUT has 256 colours: 0 (background) black, then
 * distinct, bright colours spread by the golden angle; the display range is 0-255, so
 * label k shows colour k (labels above 255 share the last colour).
 */
final class LabelImages {
    private static LUT lut;

    private LabelImages() {
    }

    /** The glasbey-style LUT (one shared instance). */
    static synchronized LUT lut() {
        if (lut == null) {
            byte[] r = new byte[256];
            byte[] g = new byte[256];
            byte[] b = new byte[256];
            for (int i = 1; i < 256; i++) {
                float hue = (float) ((i * 0.618033988749895) % 1.0);
                float sat = 0.55f + 0.45f * ((i * 5) % 3) / 2f;
                float val = 0.75f + 0.25f * ((i * 7) % 2);
                int rgb = Color.HSBtoRGB(hue, sat, val);
                r[i] = (byte) (rgb >> 16);
                g[i] = (byte) (rgb >> 8);
                b[i] = (byte) rgb;
            }
            lut = new LUT(r, g, b);
        }
        return lut;
    }

    /**
     * Turn a valid labels header into an image header ImageJ holds, returning the payload
     * in that pixel type (the same array when no conversion is needed).
     */
    static byte[] asImage(Header h, byte[] payload) throws Header.Unsupported {
        String dtype = h.dtype;
        char kind = dtype.charAt(1);
        int size = Integer.parseInt(dtype.substring(2));
        h.kind = "image";
        if (h.axes.toLowerCase().endsWith("c")) {
            throw new Header.Unsupported("labels with axes '" + h.axes + "': the last two axes must be y, x");
        }
        if (size == 1 && kind != 'i') {
            h.dtype = "|u1";
            return payload;
        }
        if (size == 2 && kind == 'u') {
            return payload;
        }
        ByteOrder order = dtype.charAt(0) == '>' ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN;
        ByteBuffer in = ByteBuffer.wrap(payload).order(order);
        int n = payload.length / size;
        long min = Long.MAX_VALUE;
        long max = Long.MIN_VALUE;
        for (int i = 0; i < n; i++) {
            long v = read(in, i * size, kind, size);
            if (kind == 'u' && size == 8 && v < 0) {
                throw new Header.Unsupported("label value " + Long.toUnsignedString(v) + " is beyond what ImageJ holds exactly (2^24)");
            }
            min = Math.min(min, v);
            max = Math.max(max, v);
        }
        boolean short16 = n == 0 || (min >= 0 && max <= 65535);
        if (!short16 && (min < -(1L << 24) || max > (1L << 24))) {
            throw new Header.Unsupported("label values from " + min + " to " + max + " do not fit ImageJ (16-bit, "
                    + "or 32-bit float exact within +-2^24); renumber the labels");
        }
        ByteBuffer out = ByteBuffer.allocate(n * (short16 ? 2 : 4)).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) {
            long v = read(in, i * size, kind, size);
            if (short16) {
                out.putShort((short) v);
            } else {
                out.putFloat((float) v);
            }
        }
        h.dtype = short16 ? "<u2" : "<f4";
        h.nbytes = out.capacity();
        return out.array();
    }

    private static long read(ByteBuffer in, int at, char kind, int size) {
        long v = size == 1 ? in.get(at) : size == 2 ? in.getShort(at) : size == 4 ? in.getInt(at) : in.getLong(at);
        if (kind == 'u' && size < 8) {
            v &= (1L << (8 * size)) - 1;
        }
        return v;
    }
}
