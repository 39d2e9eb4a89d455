package polystore.fiji;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * The <b>table</b> frame of a points or shapes message (docs/streaming-protocol.md,
 * "Annotations"): UTF-8 JSON holding {@code properties} (column -> one value per
 * point or shape: a JSON list, or {@code {"dtype", "base64"}} of little-endian
 * numbers) and, for shapes, {@code shape_types} and {@code counts}.
 *
 * <p>Every rule of the Python receiver holds: a broken table makes the message
 * malformed ({@link Header.Invalid}).
 */
final class Table {
    /** Largest table frame, in bytes. */
    static final int MAX_BYTES = 64 * 1024 * 1024;
    private static final Pattern COLUMN_DTYPE = Pattern.compile("[<|][biuf](1|2|4|8)");
    /** napari's shape types, with the aliases the Python model accepts. */
    private static final String[][] TYPES = {
        {"polygon", "polygon"}, {"path", "path"}, {"polyline", "path"}, {"rectangle", "rectangle"},
        {"rect", "rectangle"}, {"ellipse", "ellipse"}, {"oval", "ellipse"}, {"line", "line"},
    };

    /** Property columns in order: name -> one value per item (Long, Double, Boolean, String, JsonElement). */
    final Map<String, Object[]> properties = new LinkedHashMap<String, Object[]>();
    /** Shapes only: vertices per shape. */
    int[] counts;
    /** Shapes only: the canonical shape type of each shape. */
    String[] shapeTypes;

    /** Parse the table of a message of {@code kind} with {@code rows} coordinate rows and axes {@code axes}. */
    static Table parse(byte[] raw, String kind, long rows, String axes) throws Header.Invalid {
        if (raw.length > MAX_BYTES) {
            throw new Header.Invalid("table frame of " + raw.length + " bytes exceeds the limit of " + MAX_BYTES);
        }
        JsonObject doc;
        try {
            doc = Wire.parseObject(raw, "table frame", MAX_BYTES);
        } catch (Header.Invalid e) {
            throw new Header.Invalid("table frame is not UTF-8 JSON: " + e.getMessage());
        }
        Table t = new Table();
        long items = rows;
        if (kind.equals("shapes")) {
            t.shapes(doc, rows);
            items = t.counts.length;
        }
        JsonElement props = doc.get("properties");
        if (props != null && !props.isJsonObject()) {
            throw new Header.Invalid("table frame must be a JSON object with a 'properties' object");
        }
        if (props != null) {
            for (Map.Entry<String, JsonElement> e : props.getAsJsonObject().entrySet()) {
                String name = e.getKey();
                if (name.isEmpty()) {
                    throw new Header.Invalid("property names must be non-empty strings");
                }
                if (name.length() == 1 && axes.indexOf(name.charAt(0)) >= 0) {
                    throw new Header.Invalid("property '" + name + "' has the name of an axis; rename it");
                }
                Object[] column = column(name, e.getValue());
                if (column.length != items) {
                    throw new Header.Invalid("property '" + name + "' has " + column.length + " value(s) but there are "
                            + items + "; give one per item");
                }
                t.properties.put(name, column);
            }
        }
        return t;
    }

    private void shapes(JsonObject doc, long rows) throws Header.Invalid {
        JsonElement c = doc.get("counts");
        JsonElement s = doc.get("shape_types");
        if (c == null || !c.isJsonArray()) {
            throw new Header.Invalid("shapes table needs 'counts': a list of non-negative integers");
        }
        JsonArray ca = c.getAsJsonArray();
        counts = new int[ca.size()];
        long total = 0;
        for (int i = 0; i < counts.length; i++) {
            BigInteger n = Wire.integer(ca.get(i));
            if (n == null || n.signum() < 0 || n.bitLength() > 31) {
                throw new Header.Invalid("shapes table needs 'counts': a list of non-negative integers");
            }
            counts[i] = n.intValue();
            total += counts[i];
        }
        if (total != rows) {
            throw new Header.Invalid("shapes table counts " + total + " vertices but the payload holds " + rows);
        }
        if (s == null || !s.isJsonArray()) {
            throw new Header.Invalid("shapes table needs 'shape_types': a list of strings");
        }
        JsonArray sa = s.getAsJsonArray();
        if (sa.size() != counts.length) {
            throw new Header.Invalid("Shapes: " + sa.size() + " shape type(s) for " + counts.length + " shape(s); give one per shape");
        }
        shapeTypes = new String[counts.length];
        for (int i = 0; i < counts.length; i++) {
            String name = Wire.string(sa.get(i));
            if (name == null) {
                throw new Header.Invalid("shapes table needs 'shape_types': a list of strings");
            }
            shapeTypes[i] = canonical(name, i);
        }
    }

    private static String canonical(String name, int index) throws Header.Invalid {
        for (String[] pair : TYPES) {
            if (pair[0].equals(name)) {
                return pair[1];
            }
        }
        throw new Header.Invalid("Shapes: shape " + index + " has unknown type '" + name
                + "'; known: polygon, path, rectangle, ellipse, line");
    }

    private static Object[] column(String name, JsonElement value) throws Header.Invalid {
        if (value.isJsonArray()) {
            JsonArray a = value.getAsJsonArray();
            Object[] out = new Object[a.size()];
            for (int i = 0; i < out.length; i++) {
                out[i] = a.get(i);
            }
            return out;
        }
        if (!value.isJsonObject() || Wire.string(value.getAsJsonObject().get("dtype")) == null
                || Wire.string(value.getAsJsonObject().get("base64")) == null) {
            throw new Header.Invalid("property '" + name + "' must be a list or {'dtype', 'base64'}");
        }
        String dtype = Wire.string(value.getAsJsonObject().get("dtype"));
        if (!COLUMN_DTYPE.matcher(dtype).matches()) {
            throw new Header.Invalid("property '" + name + "' has unsupported dtype '" + dtype + "'");
        }
        byte[] raw;
        try {
            raw = Base64.getDecoder().decode(Wire.string(value.getAsJsonObject().get("base64")));
        } catch (IllegalArgumentException e) {
            throw new Header.Invalid("property '" + name + "' is not valid base64");
        }
        int size = dtype.charAt(2) - '0';
        if (raw.length % size != 0) {
            throw new Header.Invalid("property '" + name + "' has " + raw.length + " bytes, not a multiple of " + size);
        }
        ByteBuffer bb = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
        char kind = dtype.charAt(1);
        Object[] out = new Object[raw.length / size];
        for (int i = 0; i < out.length; i++) {
            out[i] = number(bb, kind, size);
        }
        return out;
    }

    private static Object number(ByteBuffer bb, char kind, int size) {
        if (kind == 'f') {
            return Double.valueOf(size == 4 ? bb.getFloat() : size == 8 ? bb.getDouble() : halfFloat(bb.getShort()));
        }
        long v = size == 1 ? bb.get() : size == 2 ? bb.getShort() : size == 4 ? bb.getInt() : bb.getLong();
        if (kind == 'b') {
            return Boolean.valueOf(v != 0);
        }
        if (kind == 'u') {
            if (size == 8 && v < 0) {
                return new BigInteger(Long.toUnsignedString(v));
            }
            v = size == 8 ? v : v & ((1L << (8 * size)) - 1);
        }
        return Long.valueOf(v);
    }

    private static double halfFloat(short bits) {
        int h = bits & 0xffff;
        int exp = (h >> 10) & 0x1f;
        int mant = h & 0x3ff;
        double sign = (h & 0x8000) != 0 ? -1.0 : 1.0;
        if (exp == 0) {
            return sign * mant * Math.pow(2, -24);
        }
        if (exp == 31) {
            return mant == 0 ? sign * Double.POSITIVE_INFINITY : Double.NaN;
        }
        return sign * (1 + mant / 1024.0) * Math.pow(2, exp - 15);
    }

    /** One item's properties (a row), for the ROI's "polystore" entry. */
    Map<String, Object> row(int i) {
        Map<String, Object> row = new LinkedHashMap<String, Object>();
        for (Map.Entry<String, Object[]> e : properties.entrySet()) {
            row.put(e.getKey(), e.getValue()[i]);
        }
        return row;
    }

    /** Items [start, stop) of every column, for a point ROI's "polystore" entry. */
    Map<String, Object> columns(int start, int stop) {
        Map<String, Object> cols = new LinkedHashMap<String, Object>();
        for (Map.Entry<String, Object[]> e : properties.entrySet()) {
            List<Object> values = new ArrayList<Object>(stop - start);
            for (int i = start; i < stop; i++) {
                values.add(e.getValue()[i]);
            }
            cols.put(e.getKey(), values);
        }
        return cols;
    }
}
