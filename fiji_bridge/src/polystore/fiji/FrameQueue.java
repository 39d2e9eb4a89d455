package polystore.fiji;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The bounded hand-off between the receiver and the placer.
 *
 * <p>Like the Python receiver's queue: a live frame (no index) waiting for an image
 * is replaced by a newer live frame for the same image (it would be overwritten
 * anyway); indexed frames are all kept. At most {@code capacity} messages wait, so
 * a slow placer pushes back on the socket instead of filling the heap.
 */
final class FrameQueue {
    /** Returned by {@link #put} when the queue stayed full for the whole timeout. */
    static final Object[] FULL = new Object[0];

    private final int capacity;
    private final LinkedHashMap<Object, Object[]> items = new LinkedHashMap<Object, Object[]>();
    private long replaced;

    FrameQueue(int capacity) {
        this.capacity = capacity;
    }

    /**
     * Queue {@code item} under {@code key}. Returns the item it replaced, null if none,
     * or {@link #FULL} if there was no room within {@code timeoutMs}.
     */
    synchronized Object[] put(Object key, Object[] item, long timeoutMs) throws InterruptedException {
        Object[] old = items.remove(key);
        if (old != null) {
            replaced++;
            items.put(key, item); // the newest goes to the back, as in the Python receiver
            notifyAll();
            return old;
        }
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (items.size() >= capacity) {
            long left = deadline - System.currentTimeMillis();
            if (left <= 0) {
                return FULL;
            }
            wait(left);
        }
        items.put(key, item);
        notifyAll();
        return null;
    }

    /** Remove and return the oldest item, waiting up to {@code timeoutMs}; null if none. */
    synchronized Object[] take(long timeoutMs) throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (items.isEmpty()) {
            long left = deadline - System.currentTimeMillis();
            if (left <= 0) {
                return null;
            }
            wait(left);
        }
        Iterator<Map.Entry<Object, Object[]>> it = items.entrySet().iterator();
        Object[] first = it.next().getValue();
        it.remove();
        notifyAll();
        return first;
    }

    synchronized boolean isEmpty() {
        return items.isEmpty();
    }

    synchronized int size() {
        return items.size();
    }

    synchronized long replaced() {
        return replaced;
    }
}
