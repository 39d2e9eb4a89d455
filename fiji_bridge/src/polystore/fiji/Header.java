package polystore.fiji;

import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One validated polystore message header (docs/streaming-protocol.md, version 1).
 *
 * <p>{@link #parse} throws {@link Invalid} for anything that does not follow the
 * protocol (the message is then counted as malformed); {@link Unsupported} marks a
 * well-formed message the bridge cannot show (counted as dropped).
 */
final class Header {
    /** The header breaks the protocol: counted as malformed. */
    static final class Invalid extends Exception {
        private static final long serialVersionUID = 1L;

        Invalid(String message) {
            super(message);
        }
    }

    /** A valid message ImageJ cannot represent: counted as dropped. */
    static final class Unsupported extends Exception {
        private static final long serialVersionUID = 1L;

        Unsupported(String message) {
            super(message);
        }
    }

    /** Pixel types ImageJ 1 holds natively. */
    enum PixelType {
        U8(1, 8), U16(2, 16), F32(4, 32);

        final int itemsize;
        final int bitDepth;

        PixelType(int itemsize, int bitDepth) {
            this.itemsize = itemsize;
            this.bitDepth = bitDepth;
        }
    }

    static final String HYPERSTACK_AXES = "tcz";

    String stream;
    long seq;
    String path;
    String kind;
    String dtype;
    int[] shape;
    long nbytes;
    String layer;
    String axes;
    Map<String, Integer> index = new LinkedHashMap<String, Integer>();
    Map<String, Object> display;

    // derived by resolve()
    PixelType pixelType;
    ByteOrder byteOrder;
    String title;
    /** Hyperstack letters ('c', 'z', 't') of the leading dimensions of the payload, outermost first. */
    char[] blockAxes;

    static Header parse(String text, int payloadLength) throws Invalid {
        Object doc;
        try {
            doc = Json.parse(text);
        } catch (Json.ParseException e) {
            throw new Invalid("header is not JSON: " + e.getMessage());
        }
        if (!(doc instanceof Map)) {
            throw new Invalid("header is not a JSON object");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) doc;
        Header h = new Header();
        Object v = m.get("v");
        if (!(v instanceof Long) || ((Long) v).longValue() != 1L) {
            throw new Invalid("unknown protocol version " + v + " (this bridge speaks v=1)");
        }
        h.kind = str(m, "kind", true);
        h.stream = m.get("stream") instanceof String ? (String) m.get("stream") : "";
        Object seq = m.get("seq");
        if (seq != null && !(seq instanceof Long)) {
            throw new Invalid("seq must be an integer");
        }
        h.seq = seq == null ? -1L : ((Long) seq).longValue();
        if (!"image".equals(h.kind)) {
            return h; // caller drops other kinds
        }
        h.path = str(m, "path", false);
        h.layer = str(m, "layer", false);
        h.axes = str(m, "axes", false);
        h.dtype = str(m, "dtype", true);
        Object order = m.get("order");
        if (order != null && !"C".equals(order)) {
            throw new Invalid("order must be \"C\"");
        }
        Object shape = m.get("shape");
        if (!(shape instanceof List) || ((List<?>) shape).isEmpty() || ((List<?>) shape).size() > 8) {
            throw new Invalid("shape must be a list of 1 to 8 integers");
        }
        List<?> shapeList = (List<?>) shape;
        h.shape = new int[shapeList.size()];
        for (int i = 0; i < h.shape.length; i++) {
            Object d = shapeList.get(i);
            if (!(d instanceof Long) || ((Long) d).longValue() < 0 || ((Long) d).longValue() > Integer.MAX_VALUE) {
                throw new Invalid("shape entries must be non-negative integers");
            }
            h.shape[i] = (int) ((Long) d).longValue();
        }
        Object nb = m.get("nbytes");
        if (!(nb instanceof Long)) {
            throw new Invalid("nbytes must be an integer");
        }
        h.nbytes = ((Long) nb).longValue();
        if (h.nbytes != payloadLength) {
            throw new Invalid("nbytes=" + h.nbytes + " but the payload has " + payloadLength + " bytes");
        }
        int itemsize = itemsize(h.dtype);
        long expected = itemsize;
        try {
            for (int d : h.shape) {
                expected = Math.multiplyExact(expected, (long) d);
            }
        } catch (ArithmeticException e) {
            throw new Invalid("shape overflows");
        }
        if (expected != h.nbytes) {
            throw new Invalid("nbytes=" + h.nbytes + " but shape x itemsize = " + expected);
        }
        Object index = m.get("index");
        if (index != null) {
            if (!(index instanceof Map)) {
                throw new Invalid("index must be an object or null");
            }
            for (Map.Entry<?, ?> e : ((Map<?, ?>) index).entrySet()) {
                Object val = e.getValue();
                if (!(val instanceof Long) || ((Long) val).longValue() < 0 || ((Long) val).longValue() > 1000000L) {
                    throw new Invalid("index values must be integers in [0, 1000000]");
                }
                h.index.put(((String) e.getKey()).toLowerCase(), Integer.valueOf((int) ((Long) val).longValue()));
            }
        }
        Object display = m.get("display");
        if (display instanceof Map) {
            @SuppressWarnings("unchecked")
            Map<String, Object> dm = (Map<String, Object>) display;
            h.display = dm;
        }
        if ((h.layer == null || h.layer.isEmpty()) && (h.path == null || h.path.isEmpty())) {
            throw new Invalid("a message needs a path or a layer");
        }
        return h;
    }

    private static String str(Map<String, Object> m, String key, boolean required) throws Invalid {
        Object o = m.get(key);
        if (o == null) {
            if (required) {
                throw new Invalid("missing field '" + key + "'");
            }
            return null;
        }
        if (!(o instanceof String)) {
            throw new Invalid("field '" + key + "' must be a string");
        }
        return (String) o;
    }

    /** Item size of a NumPy dtype string such as "<u2", "|u1", ">f8"; Invalid if unparseable. */
    private static int itemsize(String dtype) throws Invalid {
        String t = dtype;
        if (!t.isEmpty() && "<>|=".indexOf(t.charAt(0)) >= 0) {
            t = t.substring(1);
        }
        if (t.length() < 2 || "biufc".indexOf(t.charAt(0)) < 0) {
            throw new Invalid("dtype '" + dtype + "' is not a NumPy dtype string like '<u2'");
        }
        try {
            int n = Integer.parseInt(t.substring(1));
            if (n < 1 || n > 16) {
                throw new Invalid("dtype '" + dtype + "' has a bad item size");
            }
            return n;
        } catch (NumberFormatException e) {
            throw new Invalid("dtype '" + dtype + "' has a bad item size");
        }
    }

    /** Work out pixel type, byte order, title and the hyperstack axes of the payload. */
    void resolve() throws Unsupported {
        String t = dtype;
        char bo = '<';
        if (!t.isEmpty() && "<>|=".indexOf(t.charAt(0)) >= 0) {
            bo = t.charAt(0);
            t = t.substring(1);
        }
        byteOrder = bo == '>' ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN;
        if (t.equals("u1")) {
            pixelType = PixelType.U8;
        } else if (t.equals("u2")) {
            pixelType = PixelType.U16;
        } else if (t.equals("f4")) {
            pixelType = PixelType.F32;
        } else {
            throw new Unsupported("dtype '" + dtype + "' is not uint8, uint16 or float32 "
                    + "(polystore's FijiStreamingBackend converts other dtypes before sending)");
        }
        if (shape.length < 2) {
            throw new Unsupported("an image needs at least 2 dimensions (y, x), got shape of rank " + shape.length);
        }
        for (String key : index.keySet()) {
            if (key.length() != 1 || HYPERSTACK_AXES.indexOf(key.charAt(0)) < 0) {
                throw new Unsupported("index axis '" + key + "' has no place in an ImageJ hyperstack (c, z, t only)");
            }
        }
        int lead = shape.length - 2;
        List<Character> free = new ArrayList<Character>();
        if (axes != null && !axes.isEmpty()) {
            // Protocol: axes name the stack axes, then the frame's own axes (the last shape.length letters).
            String a = axes.toLowerCase();
            if (a.length() < shape.length) {
                throw new Unsupported("axes '" + axes + "' name fewer axes than the shape of rank " + shape.length);
            }
            String frame = a.substring(a.length() - shape.length);
            if (!frame.endsWith("yx")) {
                throw new Unsupported("axes '" + axes + "': the frame's last two axes must be y, x for ImageJ");
            }
            for (int i = 0; i < a.length() - 2; i++) {
                char c = a.charAt(i);
                if (HYPERSTACK_AXES.indexOf(c) < 0) {
                    throw new Unsupported("axis '" + c + "' in axes '" + axes + "' has no place in an ImageJ hyperstack (t, c, z, y, x only)");
                }
            }
            for (int i = 0; i < lead; i++) {
                char c = frame.charAt(i);
                if (index.containsKey(String.valueOf(c))) {
                    throw new Unsupported("axis '" + c + "' is both indexed and a frame axis");
                }
                free.add(Character.valueOf(c));
            }
        } else {
            if (lead > 3) {
                throw new Unsupported("shape of rank " + shape.length + " has more axes than an ImageJ hyperstack");
            }
            for (int i = 0; i < HYPERSTACK_AXES.length(); i++) {
                char c = HYPERSTACK_AXES.charAt(i);
                if (!index.containsKey(String.valueOf(c))) {
                    free.add(Character.valueOf(c));
                }
            }
            while (free.size() > lead) {
                free.remove(0); // keep the innermost letters: zyx, czyx, tczyx
            }
            if (free.size() != lead) {
                throw new Unsupported("shape of rank " + shape.length + " plus index " + index.keySet() + " has more axes than an ImageJ hyperstack");
            }
        }
        blockAxes = new char[lead];
        for (int i = 0; i < lead; i++) {
            blockAxes[i] = free.get(i).charValue();
            for (int j = 0; j < i; j++) {
                if (blockAxes[j] == blockAxes[i]) {
                    throw new Unsupported("axis '" + blockAxes[i] + "' appears twice");
                }
            }
        }
        title = layer != null && !layer.isEmpty() ? layer : titleFromPath(path);
    }

    private static final String[] MULTI_SUFFIXES = {".ome.tiff", ".ome.tif", ".ome.zarr", ".nii.gz", ".tar.gz"};

    /**
     * The image title for a message without a layer: the protocol's layer-naming rule
     * ("A01/site1_c2.tif" -> "A01/site1_c2"; leading "/" and "./" dropped, extension removed).
     */
    static String titleFromPath(String path) {
        String text = path.replace('\\', '/');
        while (text.startsWith("./")) {
            text = text.substring(2);
        }
        while (text.startsWith("/")) {
            text = text.substring(1);
        }
        int slash = text.lastIndexOf('/');
        String head = slash >= 0 ? text.substring(0, slash) : "";
        String tail = slash >= 0 ? text.substring(slash + 1) : text;
        String lowered = tail.toLowerCase();
        boolean done = false;
        for (String suffix : MULTI_SUFFIXES) {
            if (lowered.endsWith(suffix) && tail.length() > suffix.length()) {
                tail = tail.substring(0, tail.length() - suffix.length());
                done = true;
                break;
            }
        }
        if (!done) {
            int dot = tail.lastIndexOf('.');
            if (dot > 0 && !tail.substring(0, dot).replace(".", "").isEmpty()) {
                tail = tail.substring(0, dot); // as Python's posixpath.splitext
            }
        }
        String name = head.isEmpty() ? tail : head + "/" + tail;
        return name.isEmpty() ? "stream" : name;
    }
}
