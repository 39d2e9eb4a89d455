package polystore.fiji;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import java.math.BigInteger;

/**
 * Message kinds by protocol version and the version-2 (annotation) rules on top of
 * an image header's (docs/streaming-protocol.md, "Annotations"): version 1 is
 * {@code image}; version 2 is {@code labels}, {@code points} and {@code shapes}.
 * Points and shapes may carry an {@code index}: the plane they belong to, named by
 * axes their coordinates do not have.
 */
final class AnnotationHeader {
    /** Most coordinate rows (points, or vertices of all shapes) in one message. */
    static final long MAX_COORDINATES = 10000000L;

    private AnnotationHeader() {
    }

    /** The message kind, after checking it against the version ({@code v} and {@code kind} of the header). */
    static String kind(JsonObject m) throws Header.Invalid {
        BigInteger v = Wire.integer(m.get("v"));
        String kind = Wire.string(m.get("kind"));
        if (v == null || !(v.equals(BigInteger.ONE) || v.equals(BigInteger.valueOf(2)))) {
            throw new Header.Invalid("unsupported protocol version " + m.get("v") + " (this bridge speaks 1 and 2)");
        }
        boolean known = v.intValue() == 1 ? "image".equals(kind)
                : "labels".equals(kind) || "points".equals(kind) || "shapes".equals(kind);
        if (!known) {
            throw new Header.Invalid("unknown message kind " + m.get("kind") + " for protocol version " + v);
        }
        return kind;
    }

    /** Frames a message of this kind has: header, payload (and the table for points and shapes). */
    static int frames(String kind) {
        return kind.equals("points") || kind.equals("shapes") ? 3 : 2;
    }

    /** The version-2 rules (called by {@link Header#parse} for labels, points and shapes). */
    static void check(Header h, JsonElement axesElement, JsonElement index) throws Header.Invalid {
        String kind = h.kind;
        String axes = Wire.string(axesElement);
        if (axes == null) {
            throw new Header.Invalid(kind + " messages need 'axes' naming their dimensions");
        }
        if (index != null) {
            if (kind.equals("labels")) {
                throw new Header.Invalid("labels messages replace their layer: 'index' must be null");
            }
            if (index.isJsonObject()) { // the plane of these items: axes the coordinates do not have
                for (String key : index.getAsJsonObject().keySet()) {
                    if (key.length() == 1 && axes.indexOf(key.charAt(0)) >= 0) {
                        throw new Header.Invalid(kind + ": index axis '" + key + "' is also a coordinate axis of '" + axes + "'");
                    }
                }
            }
        }
        char t = h.dtype.charAt(1);
        if (kind.equals("labels")) {
            if (t != 'b' && t != 'i' && t != 'u') {
                throw new Header.Invalid("labels must have an integer dtype, not " + h.dtype);
            }
            if (axes.length() != h.shape.length || h.shape.length < 2) {
                throw new Header.Invalid("labels of shape " + Header.shapeString(h.shape)
                        + " need one axis letter per dimension, got '" + axes + "'");
            }
            return;
        }
        if (!h.dtype.equals("<f8") || h.shape.length != 2 || h.shape[1] != axes.length()) {
            throw new Header.Invalid(kind + " coordinates must be <f8 of shape [N, " + axes.length() + "] for axes '" + axes + "'");
        }
        if (h.shape[0] > MAX_COORDINATES) {
            throw new Header.Invalid(kind + ": " + h.shape[0] + " coordinates is more than the limit of " + MAX_COORDINATES);
        }
    }
}
