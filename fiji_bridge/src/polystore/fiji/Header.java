package polystore.fiji;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import java.math.BigInteger;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * One validated polystore message header (docs/streaming-protocol.md, versions 1 and 2).
 *
 * <p>{@link #parse} applies every field rule of the protocol, exactly as the Python
 * receiver does (tests/streaming_conformance.py holds the shared table), and throws
 * {@link Invalid} for anything that breaks them (the message is then counted as
 * malformed). {@link #resolve} throws {@link Unsupported} for a well-formed message
 * ImageJ cannot show (counted as dropped and reported to the sender).
 */
final class Header {
    /** The header breaks the protocol: counted as malformed. */
    static final class Invalid extends Exception {
        private static final long serialVersionUID = 1L;

        Invalid(String message) {
            super(message);
        }
    }

    /** A valid message ImageJ cannot represent: counted as dropped, reported to its sender. */
    static final class Unsupported extends Exception {
        private static final long serialVersionUID = 1L;

        Unsupported(String message) {
            super(message);
        }
    }

    /** Pixel types ImageJ 1 holds: 8-bit, 16-bit unsigned, 32-bit float, RGB (from uint8 samples). */
    enum PixelType {
        U8(1, 8), U16(2, 16), F32(4, 32), RGB(1, 24);

        /** Bytes per sample in the payload. */
        final int itemsize;
        final int bitDepth;

        PixelType(int itemsize, int bitDepth) {
            this.itemsize = itemsize;
            this.bitDepth = bitDepth;
        }
    }

    static final int MAX_NDIM = 16;
    static final int MAX_STRING = 4096;
    static final long MAX_INDEX = 1L << 31;
    static final String HYPERSTACK_AXES = "tcz";
    private static final Pattern DTYPE = Pattern.compile("[<>|=][biufc](1|2|4|8|16)");
    /** Protocol 1.1 "reply": where the sender reads feedback (loopback only). */
    private static final Pattern REPLY = Pattern.compile("tcp://127\\.0\\.0\\.1:[1-9][0-9]{0,4}");
    private static final BigInteger LONG_MAX = BigInteger.valueOf(Long.MAX_VALUE);
    private static final String[] REQUIRED = {"v", "kind", "stream", "seq", "path", "dtype", "shape", "order", "nbytes", "sent"};

    String stream;
    long seq;
    String path;
    String kind;
    String dtype;
    long[] shape;
    long nbytes;
    String layer;
    String axes;
    Map<String, Integer> index = new LinkedHashMap<String, Integer>();
    JsonObject display;

    // derived by resolve()
    PixelType pixelType;
    ByteOrder byteOrder;
    String title;
    /** Frame size in ImageJ terms. */
    int width;
    int height;
    /** Samples per pixel in the payload: 1, or 3/4 for RGB/RGBA. */
    int samples = 1;
    /** Hyperstack letters ('c', 'z', 't') of the leading dimensions of the payload, outermost first. */
    char[] blockAxes;

    /** Parse and validate the header frame (UTF-8 JSON) of a message whose payload has payloadLength bytes. */
    static Header parse(byte[] head, int payloadLength) throws Invalid {
        JsonObject m = Wire.parseObject(head, "header");
        for (String key : REQUIRED) {
            if (!m.has(key)) {
                throw new Invalid("header is missing field '" + key + "'");
            }
        }
        Header h = new Header();
        h.kind = AnnotationHeader.kind(m);
        h.stream = text(m, "stream", false);
        h.path = text(m, "path", false);
        h.layer = text(m, "layer", true);
        BigInteger seq = Wire.integer(m.get("seq"));
        if (seq == null || seq.signum() < 0 || seq.compareTo(LONG_MAX) > 0) {
            throw new Invalid("header field 'seq' must be a non-negative integer below 2^63");
        }
        h.seq = seq.longValue();
        h.dtype = Wire.string(m.get("dtype"));
        if (h.dtype == null || !DTYPE.matcher(h.dtype).matches()) {
            throw new Invalid("unsupported dtype " + m.get("dtype") + " (a NumPy dtype string with byte order, like '<u2')");
        }
        JsonElement shape = m.get("shape");
        if (!shape.isJsonArray() || shape.getAsJsonArray().size() > MAX_NDIM) {
            throw new Invalid("header field 'shape' must be a list of at most " + MAX_NDIM + " non-negative integers");
        }
        JsonArray dims = shape.getAsJsonArray();
        h.shape = new long[dims.size()];
        BigInteger expected = BigInteger.valueOf(itemsize(h.dtype));
        for (int i = 0; i < h.shape.length; i++) {
            BigInteger d = Wire.integer(dims.get(i));
            if (d == null || d.signum() < 0) {
                throw new Invalid("header field 'shape' must be a list of at most " + MAX_NDIM + " non-negative integers");
            }
            expected = expected.multiply(d);
            h.shape[i] = d.compareTo(LONG_MAX) > 0 ? Long.MAX_VALUE : d.longValue();
        }
        if (!"C".equals(Wire.string(m.get("order")))) {
            throw new Invalid("header field 'order' must be 'C'");
        }
        BigInteger nbytes = Wire.integer(m.get("nbytes"));
        if (nbytes == null || nbytes.signum() < 0) {
            throw new Invalid("header field 'nbytes' must be a non-negative integer");
        }
        if (!nbytes.equals(expected)) {
            throw new Invalid("nbytes " + nbytes + " does not match shape x itemsize = " + expected);
        }
        if (!nbytes.equals(BigInteger.valueOf(payloadLength))) {
            throw new Invalid("payload has " + payloadLength + " bytes but the header declares " + nbytes);
        }
        h.nbytes = nbytes.longValue();
        JsonElement axes = m.get("axes");
        JsonElement index = m.get("index");
        axes = axes == null || axes.isJsonNull() ? null : axes;
        index = index == null || index.isJsonNull() ? null : index;
        if (!h.kind.equals("image")) {
            AnnotationHeader.check(h, axes, index);
        }
        checkPlacement(h, axes, index);
        JsonElement display = m.get("display");
        if (display != null && !display.isJsonNull()) {
            if (!display.isJsonObject()) {
                throw new Invalid("header field 'display' must be an object");
            }
            checkDisplay(display.getAsJsonObject());
            h.display = display.getAsJsonObject();
        }
        JsonElement meta = m.get("meta");
        if (meta != null && !meta.isJsonNull() && !meta.isJsonObject()) {
            throw new Invalid("header field 'meta' must be an object");
        }
        JsonElement reply = m.get("reply");
        if (reply != null && !reply.isJsonNull()) {
            String r = Wire.string(reply);
            if (r == null || !REPLY.matcher(r).matches()) {
                throw new Invalid("header field 'reply' must be tcp://127.0.0.1:PORT");
            }
        }
        if (!Wire.finiteNumber(m.get("sent"))) {
            throw new Invalid("header field 'sent' must be a finite number");
        }
        return h;
    }

    private static String text(JsonObject m, String key, boolean nullable) throws Invalid {
        JsonElement e = m.get(key);
        if (nullable && (e == null || e.isJsonNull())) {
            return null;
        }
        String s = Wire.string(e);
        if (s == null || s.codePointCount(0, s.length()) > MAX_STRING) {
            throw new Invalid("header field '" + key + "' must be a string of at most " + MAX_STRING + " characters");
        }
        return s;
    }

    private static boolean axisLetter(String s) {
        return s.length() == 1 && ((s.charAt(0) >= 'a' && s.charAt(0) <= 'z') || (s.charAt(0) >= 'A' && s.charAt(0) <= 'Z'));
    }

    private static void checkPlacement(Header h, JsonElement axes, JsonElement index) throws Invalid {
        if (axes != null) {
            String a = Wire.string(axes);
            boolean ok = a != null && a.length() > 0 && a.length() <= MAX_NDIM;
            Set<Character> seen = new HashSet<Character>();
            for (int i = 0; ok && i < a.length(); i++) {
                ok = axisLetter(a.substring(i, i + 1)) && seen.add(Character.valueOf(a.charAt(i)));
            }
            if (!ok) {
                throw new Invalid("header field 'axes' must be distinct axis letters, e.g. 'tczyx'");
            }
            h.axes = a;
        }
        if (index != null) {
            if (!index.isJsonObject() || index.getAsJsonObject().size() > MAX_NDIM) {
                throw new Invalid("header field 'index' must be an object of axis -> integer");
            }
            for (Map.Entry<String, JsonElement> e : index.getAsJsonObject().entrySet()) {
                BigInteger val = Wire.integer(e.getValue());
                if (!axisLetter(e.getKey()) || val == null || val.signum() < 0 || val.compareTo(BigInteger.valueOf(MAX_INDEX)) >= 0) {
                    throw new Invalid("bad index entry '" + e.getKey() + "': " + e.getValue() + " (axis letter -> integer in [0, 2^31))");
                }
                h.index.put(e.getKey(), Integer.valueOf(val.intValue()));
            }
            if (h.axes != null && h.kind.equals("image")) { // annotations: index names the plane
                for (String key : h.index.keySet()) {
                    if (h.axes.indexOf(key.charAt(0)) < 0) {
                        throw new Invalid("index axis '" + key + "' is not in axes '" + h.axes + "'");
                    }
                }
                int ndim = h.shape.length;
                if (h.axes.length() < ndim || h.axes.length() - ndim < h.index.size()) {
                    throw new Invalid("axes '" + h.axes + "' must name the stack axes and then the " + ndim + " frame axes");
                }
            }
        }
    }

    private static void checkDisplay(JsonObject d) throws Invalid {
        for (Map.Entry<String, JsonElement> e : d.entrySet()) {
            String key = e.getKey();
            JsonElement item = e.getValue();
            if (key.equals("colormap")) {
                String s = Wire.string(item);
                if (s == null || s.codePointCount(0, s.length()) > 256) {
                    throw new Invalid("display.colormap must be a short string");
                }
            } else if (key.equals("contrast_limits")) {
                if (!item.isJsonArray() || item.getAsJsonArray().size() != 2
                        || !Wire.finiteNumber(item.getAsJsonArray().get(0)) || !Wire.finiteNumber(item.getAsJsonArray().get(1))
                        || !(Wire.number(item.getAsJsonArray().get(0)).compareTo(Wire.number(item.getAsJsonArray().get(1))) < 0)) {
                    throw new Invalid("display.contrast_limits must be [lo, hi] numbers with lo < hi");
                }
            } else if (key.equals("scale")) {
                boolean ok = item.isJsonArray() && item.getAsJsonArray().size() > 0 && item.getAsJsonArray().size() <= MAX_NDIM;
                for (int i = 0; ok && i < item.getAsJsonArray().size(); i++) {
                    JsonElement x = item.getAsJsonArray().get(i);
                    ok = Wire.finiteNumber(x) && Wire.number(x).signum() > 0;
                }
                if (!ok) {
                    throw new Invalid("display.scale must be a list of positive numbers");
                }
            }
        }
    }

    /** Item size of a NumPy dtype string already matched by DTYPE, e.g. "<u2" -> 2. */
    private static int itemsize(String dtype) {
        return Integer.parseInt(dtype.substring(2));
    }

    /** Contrast limits [lo, hi] from the display options, or null. */
    double[] contrastLimits() {
        if (display == null || !display.has("contrast_limits")) {
            return null;
        }
        JsonArray lim = display.getAsJsonArray("contrast_limits");
        return new double[] {lim.get(0).getAsDouble(), lim.get(1).getAsDouble()};
    }

    /** Work out pixel type, byte order, title, frame size and the hyperstack axes of the payload. */
    void resolve() throws Unsupported {
        char bo = dtype.charAt(0);
        String t = dtype.substring(1);
        byteOrder = bo == '>' ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN;
        int n = shape.length;
        for (long d : shape) {
            if (d > Integer.MAX_VALUE) {
                throw new Unsupported("a dimension of " + d + " is larger than ImageJ holds");
            }
        }
        String frameAxes = null;
        if (axes != null) {
            if (axes.length() < n) {
                throw new Unsupported("axes '" + axes + "' name fewer axes than the shape of rank " + n);
            }
            frameAxes = axes.toLowerCase().substring(axes.length() - n);
        }
        // RGB: the frame's axes end in c with 3 or 4 channels, or (no axes) a uint8 (H, W, 3|4) array.
        // (Case-sensitive, as in the napari receiver: "YXC" is not RGB.)
        boolean rgb = n >= 3 && (shape[n - 1] == 3 || shape[n - 1] == 4)
                && (axes != null ? axes.endsWith("c") : n == 3 && t.equals("u1"));
        if (rgb && !t.equals("u1")) {
            throw new Unsupported("RGB frames (axes ending in 'c' with 3 or 4 channels) must be uint8 for an ImageJ "
                    + "RGB image, got dtype '" + dtype + "'; send the channels first (axes 'cyx') for a hyperstack");
        }
        if (rgb) {
            pixelType = PixelType.RGB;
        } else if (t.equals("u1")) {
            pixelType = PixelType.U8;
        } else if (t.equals("u2")) {
            pixelType = PixelType.U16;
        } else if (t.equals("f4")) {
            pixelType = PixelType.F32;
        } else {
            throw new Unsupported("dtype '" + dtype + "' is not uint8, uint16 or float32 "
                    + "(polystore's FijiStreamingBackend converts other dtypes before sending)");
        }
        int frameRank = rgb ? 3 : 2;
        if (n < frameRank) {
            throw new Unsupported("an image needs at least 2 dimensions (y, x), got shape of rank " + n);
        }
        samples = rgb ? (int) shape[n - 1] : 1;
        height = (int) shape[n - frameRank];
        width = (int) shape[n - frameRank + 1];
        if (width == 0 || height == 0) {
            throw new Unsupported("an image of " + height + " x " + width + " pixels cannot be shown in ImageJ");
        }
        if ((long) width * height * samples * pixelType.itemsize > Integer.MAX_VALUE) {
            throw new Unsupported("a plane of " + height + " x " + width + " pixels is larger than ImageJ holds");
        }
        for (String key : index.keySet()) {
            if (HYPERSTACK_AXES.indexOf(Character.toLowerCase(key.charAt(0))) < 0) {
                throw new Unsupported("index axis '" + key + "' has no place in an ImageJ hyperstack (c, z, t only)");
            }
        }
        Map<String, Integer> lowered = new LinkedHashMap<String, Integer>();
        for (Map.Entry<String, Integer> e : index.entrySet()) {
            lowered.put(e.getKey().toLowerCase(), e.getValue());
        }
        index = lowered;
        int lead = n - frameRank;
        List<Character> free = new ArrayList<Character>();
        if (frameAxes != null) {
            // Protocol: axes name the stack axes, then the frame's own axes (the last shape.length letters).
            String a = axes.toLowerCase();
            if (!frameAxes.endsWith(rgb ? "yxc" : "yx")) {
                throw new Unsupported("axes '" + axes + "': the frame's last axes must be y, x" + (rgb ? ", c" : "") + " for ImageJ");
            }
            for (int i = 0; i < a.length() - frameRank; i++) {
                char c = a.charAt(i);
                if (HYPERSTACK_AXES.indexOf(c) < 0 || (rgb && c == 'c')) {
                    throw new Unsupported("axis '" + c + "' in axes '" + axes + "' has no place in an ImageJ "
                            + (rgb ? "RGB hyperstack (t, z, y, x, c only)" : "hyperstack (t, c, z, y, x only)"));
                }
            }
            for (int i = 0; i < lead; i++) {
                char c = frameAxes.charAt(i);
                if (index.containsKey(String.valueOf(c))) {
                    throw new Unsupported("axis '" + c + "' is both indexed and a frame axis");
                }
                free.add(Character.valueOf(c));
            }
        } else {
            String letters = rgb ? "tz" : HYPERSTACK_AXES;
            for (int i = 0; i < letters.length(); i++) {
                char c = letters.charAt(i);
                if (!index.containsKey(String.valueOf(c))) {
                    free.add(Character.valueOf(c));
                }
            }
            while (free.size() > lead) {
                free.remove(0); // keep the innermost letters: zyx, czyx, tczyx
            }
            if (free.size() != lead) {
                throw new Unsupported("shape of rank " + n + " plus index " + index.keySet() + " has more axes than an ImageJ hyperstack");
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

    /** "(2, 3)" for error messages. */
    static String shapeString(long[] shape) {
        StringBuilder sb = new StringBuilder("(");
        for (int i = 0; i < shape.length; i++) {
            sb.append(i > 0 ? ", " : "").append(shape[i]);
        }
        return sb.append(")").toString();
    }

    /** Bytes of one plane in the payload. */
    int planeBytes() {
        return width * height * samples * pixelType.itemsize;
    }

    private static final String[] MULTI_SUFFIXES = {".ome.tiff", ".ome.tif", ".ome.zarr", ".nii.gz", ".tar.gz", ".roi.zip"};

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
