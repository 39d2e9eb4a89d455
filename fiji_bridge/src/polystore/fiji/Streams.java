package polystore.fiji;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Per-stream bookkeeping of the bridge: messages handled, the last seq, and the
 * reports of frames it refused (the last {@link #KEEP_REPORTS} per stream), which the
 * {@code rejected} control request hands back to the sender. Not thread-safe: the
 * bridge calls it under its lock.
 */
final class Streams {
    /** Rejection reports kept per stream. */
    static final int KEEP_REPORTS = 100;
    /** Streams remembered; beyond that the table starts afresh. */
    static final int MAX_STREAMS = 1000;

    private final Map<String, long[]> counts = new LinkedHashMap<String, long[]>(); // {messages, last_seq, rejected}
    private final Map<String, ArrayDeque<Map<String, Object>>> reports = new LinkedHashMap<String, ArrayDeque<Map<String, Object>>>();

    /** Record that message (stream, seq) was handled; refused when {@code reason} is set. */
    void handled(Header h, String reason) {
        long[] st = counts.get(h.stream);
        if (st == null) {
            if (counts.size() > MAX_STREAMS) {
                counts.clear();
                reports.clear();
            }
            st = new long[] {0, -1, 0};
            counts.put(h.stream, st);
        }
        st[0]++;
        st[1] = Math.max(st[1], h.seq);
        if (reason == null) {
            return;
        }
        ArrayDeque<Map<String, Object>> q = reports.get(h.stream);
        if (q == null) {
            q = new ArrayDeque<Map<String, Object>>();
            reports.put(h.stream, q);
        }
        Map<String, Object> r = new LinkedHashMap<String, Object>();
        r.put("number", Long.valueOf(st[2]));
        r.put("stream", h.stream);
        r.put("seq", Long.valueOf(h.seq));
        r.put("path", h.path);
        r.put("layer", h.title != null ? h.title : (h.layer != null ? h.layer : Header.titleFromPath(h.path)));
        r.put("reason", reason);
        q.addLast(r);
        while (q.size() > KEEP_REPORTS) {
            q.removeFirst();
        }
        st[2]++;
    }

    /** The highest seq handled for a stream (-1 if none). */
    long lastSeq(String stream) {
        long[] st = counts.get(stream);
        return st == null ? -1 : st[1];
    }

    /** The "rejected" reply: the kept reports numbered >= after, and the stream's total. */
    Map<String, Object> rejections(String stream, long after) {
        Map<String, Object> m = Control.ok();
        long[] st = counts.get(stream);
        m.put("total", Long.valueOf(st == null ? 0 : st[2]));
        List<Object> out = new ArrayList<Object>();
        ArrayDeque<Map<String, Object>> q = reports.get(stream);
        if (q != null) {
            for (Map<String, Object> r : q) {
                if (((Long) r.get("number")).longValue() >= after) {
                    out.add(r);
                }
            }
        }
        m.put("rejected", out);
        return m;
    }

    /** {stream: {messages, last_seq, rejected}} for the status reply. */
    Map<String, Object> describe() {
        Map<String, Object> st = new LinkedHashMap<String, Object>();
        for (Map.Entry<String, long[]> e : counts.entrySet()) {
            Map<String, Object> one = new LinkedHashMap<String, Object>();
            one.put("messages", Long.valueOf(e.getValue()[0]));
            one.put("last_seq", Long.valueOf(e.getValue()[1]));
            one.put("rejected", Long.valueOf(e.getValue()[2]));
            st.put(e.getKey(), one);
        }
        return st;
    }
}
