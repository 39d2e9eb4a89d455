package polystore.fiji;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;

import ij.gui.Line;
import ij.gui.OvalRoi;
import ij.gui.PointRoi;
import ij.gui.PolygonRoi;
import ij.gui.Roi;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * ImageJ ROIs for the coordinates of a points or shapes message, with the mapping of
 * polystore's {@code to_rois} (docs/annotations.md, "ImageJ ROIs"): the last two axes
 * are y, x; others must be t, c or z and constant over one shape (its plane, the
 * ROI's 1-based position). polygon -> POLYGON, path -> POLYLINE, line -> LINE,
 * rectangle -> RECTANGLE (a rotated one -> POLYGON), ellipse -> OVAL (axis-aligned
 * only); points -> one POINT ROI per run of consecutive points in one plane. Each
 * ROI's {@code polystore} property holds its axes and properties as JSON; a
 * {@code name} property is the ROI's name.
 */
final class RoiFactory {
    private static final Gson GSON = new GsonBuilder().serializeNulls().serializeSpecialFloatingPointValues()
            .disableHtmlEscaping().create();

    private final String axes;
    private final int d;
    private final double[] xyz;
    private final Table table;

    /** Decode the float64 (N, D) coordinates and check that every one is finite. */
    RoiFactory(String axes, byte[] payload, Table table) throws Header.Invalid {
        this.axes = axes;
        this.d = axes.length();
        this.table = table;
        xyz = new double[payload.length / 8];
        ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer().get(xyz);
        for (int i = 0; i < xyz.length; i++) {
            if (Double.isNaN(xyz[i]) || Double.isInfinite(xyz[i])) {
                throw new Header.Invalid("coordinates must be finite; row " + (i / d) + " is not");
            }
        }
    }

    /** Check the vertex count of every shape (the model's rules): polygon >= 3, path >= 2, line 2, box 4. */
    void checkVertices() throws Header.Invalid {
        for (int i = 0; i < table.counts.length; i++) {
            String kind = table.shapeTypes[i];
            int n = table.counts[i];
            int need = kind.equals("polygon") ? 3 : kind.equals("path") || kind.equals("line") ? 2 : 4;
            boolean exact = !kind.equals("polygon") && !kind.equals("path");
            if (exact ? n != need : n < need) {
                throw new Header.Invalid("Shapes: shape " + i + " is a " + kind + " with " + n + " vertices; a " + kind
                        + " needs " + (exact ? "exactly " : "at least ") + need);
            }
        }
    }

    /** The ROIs of a points message. */
    List<Roi> points() throws Header.Unsupported {
        checkAxes();
        List<Roi> rois = new ArrayList<Roi>();
        int n = xyz.length / d;
        int start = 0;
        while (start < n) {
            int stop = start + 1;
            while (stop < n && samePlane(start, stop)) {
                stop++;
            }
            int[] plane = plane(start, stop, "Points: point " + start);
            float[] xs = new float[stop - start];
            float[] ys = new float[stop - start];
            for (int i = start; i < stop; i++) {
                xs[i - start] = (float) xyz[i * d + d - 1];
                ys[i - start] = (float) xyz[i * d + d - 2];
            }
            Roi roi = new PointRoi(xs, ys, xs.length);
            Map<String, Object> stored = new LinkedHashMap<String, Object>();
            stored.put("axes", axisList());
            stored.put("properties", table.columns(start, stop));
            finish(roi, String.format("points-%04d", start + 1), plane, stored);
            rois.add(roi);
            start = stop;
        }
        return rois;
    }

    /** The ROIs of a shapes message, one per shape. */
    List<Roi> shapes() throws Header.Unsupported {
        checkAxes();
        List<Roi> rois = new ArrayList<Roi>(table.counts.length);
        Object[] names = table.properties.get("name");
        int start = 0;
        for (int i = 0; i < table.counts.length; i++) {
            int stop = start + table.counts[i];
            String kind = table.shapeTypes[i];
            String what = "Shapes: shape " + i + " (" + kind + ")";
            int[] plane = plane(start, stop, what);
            float[] xs = new float[stop - start];
            float[] ys = new float[stop - start];
            for (int r = start; r < stop; r++) {
                xs[r - start] = (float) xyz[r * d + d - 1];
                ys[r - start] = (float) xyz[r * d + d - 2];
            }
            Roi roi = shape(kind, xs, ys, what);
            Map<String, Object> stored = new LinkedHashMap<String, Object>();
            stored.put("axes", axisList());
            stored.put("shape_type", kind);
            stored.put("properties", table.row(i));
            String name = names != null ? text(names[i]) : String.format("%04d", i + 1);
            finish(roi, name, plane, stored);
            rois.add(roi);
            start = stop;
        }
        return rois;
    }

    private static Roi shape(String kind, float[] xs, float[] ys, String what) throws Header.Unsupported {
        if (kind.equals("polygon") || kind.equals("path")) {
            return new PolygonRoi(xs, ys, xs.length, kind.equals("polygon") ? Roi.POLYGON : Roi.POLYLINE);
        }
        if (kind.equals("line")) {
            return new Line(xs[0], ys[0], xs[1], ys[1]);
        }
        float[] ux = distinct(xs);
        float[] uy = distinct(ys);
        boolean aligned = ux.length <= 2 && uy.length <= 2;
        if (aligned) { // the corners are exactly the box's: {x0, x1} x {y0, y1}
            java.util.Set<String> corners = new java.util.HashSet<String>();
            java.util.Set<String> box = new java.util.HashSet<String>();
            for (int i = 0; i < xs.length; i++) {
                corners.add(xs[i] + "," + ys[i]);
            }
            for (float x : new float[] {ux[0], ux[ux.length - 1]}) {
                for (float y : new float[] {uy[0], uy[uy.length - 1]}) {
                    box.add(x + "," + y);
                }
            }
            aligned = corners.equals(box);
        }
        if (!aligned) {
            if (kind.equals("rectangle")) {
                return new PolygonRoi(xs, ys, xs.length, Roi.POLYGON);
            }
            throw new Header.Unsupported(what + ": ImageJ holds only axis-aligned ellipses; send it as a polygon");
        }
        double x0 = ux[0];
        double y0 = uy[0];
        double w = ux[ux.length - 1] - x0;
        double h = uy[uy.length - 1] - y0;
        return kind.equals("rectangle") ? new Roi(x0, y0, w, h) : new OvalRoi(x0, y0, w, h);
    }

    private static float[] distinct(float[] v) {
        float[] s = v.clone();
        Arrays.sort(s);
        int k = 0;
        for (int i = 0; i < s.length; i++) {
            if (i == 0 || s[i] != s[k - 1]) {
                s[k++] = s[i];
            }
        }
        return Arrays.copyOf(s, k);
    }

    private static String text(Object value) {
        if (value instanceof com.google.gson.JsonElement && ((com.google.gson.JsonElement) value).isJsonPrimitive()) {
            return ((com.google.gson.JsonElement) value).getAsString();
        }
        return String.valueOf(value);
    }

    private void finish(Roi roi, String name, int[] plane, Map<String, Object> stored) {
        roi.setName(name);
        if (plane[0] + plane[1] + plane[2] > 0) {
            roi.setPosition(plane[0], plane[1], plane[2]);
        }
        roi.setProperty("polystore", GSON.toJson(stored));
    }

    private List<String> axisList() {
        List<String> out = new ArrayList<String>(d);
        for (int i = 0; i < d; i++) {
            out.add(axes.substring(i, i + 1));
        }
        return out;
    }

    private void checkAxes() throws Header.Unsupported {
        if (d < 2 || axes.charAt(d - 2) != 'y' || axes.charAt(d - 1) != 'x') {
            throw new Header.Unsupported("ImageJ ROIs need the last two axes to be y, x; got '" + axes + "'");
        }
        for (int k = 0; k < d - 2; k++) {
            if ("tcz".indexOf(axes.charAt(k)) < 0) {
                throw new Header.Unsupported("ImageJ ROIs know only the axes t, c, z, y, x, not '" + axes.charAt(k) + "'");
            }
        }
    }

    private boolean samePlane(int a, int b) {
        for (int k = 0; k < d - 2; k++) {
            if (xyz[a * d + k] != xyz[b * d + k]) {
                return false;
            }
        }
        return true;
    }

    /** 1-based {c, z, t} of rows [start, stop) (0: no such axis); the leading axes must be one integer plane. */
    private int[] plane(int start, int stop, String what) throws Header.Unsupported {
        int[] czt = {0, 0, 0};
        for (int k = 0; k < d - 2; k++) {
            double v = xyz[start * d + k];
            for (int r = start + 1; r < stop; r++) {
                if (xyz[r * d + k] != v) {
                    throw new Header.Unsupported(what + ": the axes before y, x must be constant over one shape (its plane)");
                }
            }
            if (v != Math.floor(v) || v < 0 || v >= Integer.MAX_VALUE) {
                throw new Header.Unsupported(what + ": axis '" + axes.charAt(k) + "' must be one non-negative integer index per ROI (its plane)");
            }
            czt["czt".indexOf(axes.charAt(k))] = (int) v + 1;
        }
        return czt;
    }
}
