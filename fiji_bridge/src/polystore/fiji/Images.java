package polystore.fiji;

import ij.ImagePlus;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The images the bridge holds, one {@link Layer} per title, and how they are shown:
 * which frame starts a new image or replaces one, which hyperstack a frame belongs
 * to, and the <b>refresh</b> thread (with a display) that converts and draws new
 * pixels at most every {@link Bridge#REFRESH_MS} ms.
 *
 * <p>Guarded by the bridge's monitor (the lock save_tiff holds so that no frame
 * lands half-way through a file).
 */
final class Images {
    private final Bridge bridge;
    private final Map<String, Layer> layers = new LinkedHashMap<String, Layer>();

    Images(Bridge bridge) {
        this.bridge = bridge;
    }

    /**
     * Place a resolved frame in its image, starting or replacing the image when needed;
     * {@code labels}: a label image, shown with the glasbey-style LUT ({@link LabelImages}).
     */
    void place(Header h, byte[] payload, boolean labels) throws Header.Unsupported {
        ImagePlus toClose = null;
        synchronized (bridge) {
            Layer layer = layers.get(h.title);
            boolean plain = h.index.isEmpty();
            boolean replace = false;
            if (layer != null) {
                if (!layer.fits(h)) {
                    if (!plain && layer.indexed) {
                        // an indexed frame that does not match its hyperstack: keep the stack
                        throw new Header.Unsupported("frame " + Header.shapeString(h.shape) + " " + h.dtype
                                + (h.pixelType == Header.PixelType.RGB ? " (RGB)" : "")
                                + " does not match image '" + h.title + "' (" + layer.height + "x" + layer.width
                                + ", " + layer.type.bitDepth + "-bit); close it first to start over");
                    }
                    replace = true;
                } else if (plain && !layer.sameBlock(h)) {
                    replace = true;
                }
            }
            if (layer == null || replace) {
                Layer fresh = new Layer(h.title, h.width, h.height, h.pixelType);
                if (layer != null && layer.imp != null) {
                    if (layer.type == h.pixelType) {
                        fresh.imp = layer.imp; // keep the window; setStack swaps the pixels
                    } else {
                        toClose = layer.imp;
                    }
                }
                layer = fresh;
                layers.put(h.title, layer);
            }
            layer.indexed = !plain;
            bridge.replaced.addAndGet(layer.place(h, payload));
            double[] limits = h.contrastLimits();
            if (labels) {
                layer.lut = LabelImages.lut();
                layer.display = new double[] {0, 255};
            } else if (limits != null || layer.lut != null) {
                layer.lut = null;
                layer.display = limits;
            }
        }
        if (toClose != null) {
            closeImage(toClose);
        }
    }

    private void closeImage(ImagePlus imp) {
        try {
            imp.changes = false;
            imp.close();
        } catch (Throwable t) {
            bridge.error("closing '" + imp.getTitle() + "': " + t);
        }
    }

    /** The layers with new pixels, converted and ready to draw (the refresh thread shows them). */
    List<Layer> takeDirty() {
        synchronized (bridge) {
            List<Layer> todo = new ArrayList<Layer>();
            for (Layer l : layers.values()) {
                if (l.dirty) {
                    l.dirty = false;
                    l.forImageJ();
                    todo.add(l);
                }
            }
            return todo;
        }
    }

    /** Shows new pixels at most every REFRESH_MS (GUI only): a window per image, redrawn in place. */
    void refreshLoop() {
        while (bridge.isRunning()) {
            try {
                Thread.sleep(Bridge.REFRESH_MS);
                for (Layer l : takeDirty()) {
                    ImagePlus imp = l.imp;
                    if (imp.getWindow() == null) {
                        imp.show(); // first frame, or the user closed it: new data shows it again
                        l.shown = true;
                    } else {
                        imp.updateAndDraw();
                    }
                }
            } catch (InterruptedException e) {
                break;
            } catch (Throwable t) {
                bridge.error("refresh: " + t);
            }
        }
    }

    /** The image titled so, with its pixels up to date (caller holds the bridge's lock); null if none. */
    ImagePlus materialized(String title) {
        Layer l = layers.get(title);
        return l == null ? null : l.forImageJ();
    }

    /** Forget the image titled so and close it; false if there is none. */
    boolean close(String title) {
        Layer l;
        synchronized (bridge) {
            l = layers.remove(title);
        }
        if (l == null) {
            return false;
        }
        if (l.imp != null) {
            closeImage(l.imp);
        }
        return true;
    }

    /** One description per image, for the status reply (caller holds the bridge's lock). */
    List<Object> describe() {
        List<Object> images = new ArrayList<Object>();
        for (Layer l : layers.values()) {
            images.add(l.describe());
        }
        return images;
    }
}
