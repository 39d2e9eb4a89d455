package polystore.fiji;

import ij.gui.Roi;
import ij.plugin.frame.RoiManager;

import java.awt.EventQueue;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The points and shapes layers the bridge holds: per layer (named like an image, see
 * {@link Header#titleFromPath}) the ImageJ ROIs of its newest message. A message sent
 * again to the same layer replaces that layer's ROIs; one with an {@code index}
 * ({@code {"t": 3}}) replaces only the ROIs of that plane, placed at that position. With a display the ROI Manager
 * shows every layer's ROIs, layer after layer; headless (ImageJ's ROI Manager is a
 * window) the bridge keeps the same list and reports it through the {@code rois}
 * control request. Labels are images ({@link LabelImages}).
 *
 * <p>Guarded by the bridge's monitor.
 */
final class Annotations {
    private final Bridge bridge;
    /** Per layer, its planes (by index, "" without one) and each plane's ROIs. */
    private final Map<String, Map<String, List<Roi>>> layers = new LinkedHashMap<String, Map<String, List<Roi>>>();
    private final Map<String, String> kinds = new LinkedHashMap<String, String>();
    /** Messages placed per kind (image, labels, points, shapes). */
    private final Map<String, Long> shown = new LinkedHashMap<String, Long>();
    private boolean managerStale;

    Annotations(Bridge bridge) {
        this.bridge = bridge;
        for (String kind : new String[] {"image", "labels", "points", "shapes"}) {
            shown.put(kind, Long.valueOf(0));
        }
    }

    /** Count a placed message of {@code kind}. */
    void counted(String kind) {
        synchronized (bridge) {
            shown.put(kind, Long.valueOf(shown.get(kind).longValue() + 1));
        }
    }

    /**
     * Replace the ROIs of the layer titled so by those of a points or shapes message; with an
     * {@code index} (c, z, t) only that plane's ROIs, placed at that position.
     */
    void place(String title, String kind, RoiFactory rois, Map<String, Integer> index) throws Header.Unsupported {
        List<Roi> made = kind.equals("points") ? rois.points() : rois.shapes();
        int[] czt = {0, 0, 0};
        for (Map.Entry<String, Integer> e : index.entrySet()) {
            int at = "czt".indexOf(e.getKey());
            if (at < 0) {
                throw new Header.Unsupported("index axis '" + e.getKey() + "' has no place in an ImageJ ROI position (c, z, t only)");
            }
            czt[at] = e.getValue().intValue() + 1;
        }
        for (Roi roi : made) {
            roi.setProperty("layer", title);
            if (!index.isEmpty()) {
                roi.setPosition(czt[0] > 0 ? czt[0] : roi.getCPosition(), czt[1] > 0 ? czt[1] : roi.getZPosition(),
                        czt[2] > 0 ? czt[2] : roi.getTPosition());
            }
        }
        String plane = new java.util.TreeMap<String, Integer>(index).toString();
        synchronized (bridge) {
            Map<String, List<Roi>> planes = layers.remove(title); // re-inserted last: listed last
            if (planes == null || index.isEmpty() || !kind.equals(kinds.get(title))) {
                planes = new LinkedHashMap<String, List<Roi>>();
            }
            planes.put(plane, made);
            layers.put(title, planes);
            kinds.put(title, kind);
            managerStale = true;
        }
        counted(kind);
        if (bridge.gui) {
            EventQueue.invokeLater(new Runnable() {
                public void run() {
                    syncManager();
                }
            });
        }
    }

    /** Forget the layer titled so; false if there is none. */
    boolean close(String title) {
        boolean had;
        synchronized (bridge) {
            had = layers.remove(title) != null;
            kinds.remove(title);
            managerStale |= had;
        }
        if (had && bridge.gui) {
            EventQueue.invokeLater(new Runnable() {
                public void run() {
                    syncManager();
                }
            });
        }
        return had;
    }

    /** Make ImageJ's ROI Manager list exactly the layers' ROIs (GUI only, on the event thread). */
    private void syncManager() {
        List<Roi> all = new ArrayList<Roi>();
        synchronized (bridge) {
            if (!managerStale) {
                return;
            }
            managerStale = false;
            for (Map<String, List<Roi>> planes : layers.values()) {
                for (List<Roi> rois : planes.values()) {
                    all.addAll(rois);
                }
            }
        }
        try {
            RoiManager rm = RoiManager.getInstance();
            if (rm == null) {
                rm = new RoiManager();
            }
            rm.reset();
            for (Roi roi : all) {
                rm.add((ij.ImagePlus) null, (Roi) roi.clone(), -1);
            }
        } catch (Throwable t) {
            bridge.error("ROI Manager: " + t);
        }
    }

    /** Number of ROIs in ImageJ's ROI Manager, or -1 when there is none (headless). */
    static int managerCount() {
        if (java.awt.GraphicsEnvironment.isHeadless()) {
            return -1;
        }
        RoiManager rm = RoiManager.getInstance();
        return rm == null ? 0 : rm.getCount();
    }

    /** The {@code rois} control reply: ROIs of one layer (or all), at most {@code limit} described. */
    Map<String, Object> describe(String layer, int limit) {
        List<Object> out = new ArrayList<Object>();
        int count = 0;
        synchronized (bridge) {
            for (Map.Entry<String, Map<String, List<Roi>>> e : layers.entrySet()) {
                if (layer != null && !layer.equals(e.getKey())) {
                    continue;
                }
                for (List<Roi> rois : e.getValue().values()) {
                    for (Roi roi : rois) {
                        if (count++ < limit) {
                            out.add(one(e.getKey(), roi));
                        }
                    }
                }
            }
        }
        Map<String, Object> m = Control.ok();
        m.put("count", Long.valueOf(count));
        m.put("manager_count", Long.valueOf(bridge.gui ? managerCountOnEdt() : -1));
        m.put("rois", out);
        return m;
    }

    private static long managerCountOnEdt() {
        final int[] n = {-1};
        try {
            EventQueue.invokeAndWait(new Runnable() { // after every pending sync
                public void run() {
                    n[0] = managerCount();
                }
            });
        } catch (Exception e) {
            return -1;
        }
        return n[0];
    }

    private static Map<String, Object> one(String layer, Roi roi) {
        Map<String, Object> m = new LinkedHashMap<String, Object>();
        m.put("layer", layer);
        m.put("name", roi.getName());
        m.put("type", roi.getTypeAsString());
        m.put("c", Long.valueOf(roi.getCPosition()));
        m.put("z", Long.valueOf(roi.getZPosition()));
        m.put("t", Long.valueOf(roi.getTPosition()));
        ij.process.FloatPolygon p = roi.getFloatPolygon();
        List<Object> xy = new ArrayList<Object>(p.npoints);
        for (int i = 0; i < p.npoints; i++) {
            xy.add(new double[] {p.xpoints[i], p.ypoints[i]});
        }
        m.put("points", xy);
        Map<String, Object> bounds = new LinkedHashMap<String, Object>();
        java.awt.geom.Rectangle2D.Double b = roi.getFloatBounds();
        bounds.put("x", Double.valueOf(b.x));
        bounds.put("y", Double.valueOf(b.y));
        bounds.put("width", Double.valueOf(b.width));
        bounds.put("height", Double.valueOf(b.height));
        m.put("bounds", bounds);
        m.put("polystore", roi.getProperty("polystore"));
        return m;
    }

    /** Per layer its kind and ROI count, and messages shown per kind, for the status reply (caller holds the lock). */
    Map<String, Object> status() {
        Map<String, Object> m = new LinkedHashMap<String, Object>();
        Map<String, Object> per = new LinkedHashMap<String, Object>();
        for (Map.Entry<String, Map<String, List<Roi>>> e : layers.entrySet()) {
            Map<String, Object> one = new LinkedHashMap<String, Object>();
            long n = 0;
            for (List<Roi> rois : e.getValue().values()) {
                n += rois.size();
            }
            one.put("kind", kinds.get(e.getKey()));
            one.put("rois", Long.valueOf(n));
            one.put("planes", Long.valueOf(e.getValue().size()));
            per.put(e.getKey(), one);
        }
        m.put("layers", per);
        m.put("shown", new LinkedHashMap<String, Long>(shown));
        return m;
    }
}
