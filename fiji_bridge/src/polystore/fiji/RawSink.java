package polystore.fiji;

import java.nio.charset.StandardCharsets;

import org.zeromq.ZMQ;

/**
 * Benchmark baseline: a bare JeroMQ PULL that receives two-frame messages and only
 * counts them. A REP socket on the control port answers any request with
 * {@code {"received": n, "bytes": b}}; the request {@code {"cmd":"quit"}} ends it.
 *
 * <p>{@code java -cp jeromq.jar:polystore_bridge.jar polystore.fiji.RawSink PORT CONTROL_PORT}
 */
public final class RawSink {
    private RawSink() {
    }

    public static void main(String[] args) throws Exception {
        final int port = Integer.parseInt(args[0]);
        final int control = Integer.parseInt(args[1]);
        final ZMQ.Context ctx = ZMQ.context(1);
        final long[] counts = new long[2];
        final ZMQ.Socket pull = ctx.socket(ZMQ.PULL);
        pull.setLinger(0);
        pull.setRcvHWM(4);
        pull.bind("tcp://127.0.0.1:" + port);
        Thread t = new Thread(new Runnable() {
            public void run() {
                while (true) {
                    byte[] head = pull.recv(0);
                    if (head == null) {
                        return;
                    }
                    long n = head.length;
                    while (pull.hasReceiveMore()) {
                        byte[] part = pull.recv(0);
                        n += part == null ? 0 : part.length;
                    }
                    synchronized (counts) {
                        counts[0]++;
                        counts[1] += n;
                    }
                }
            }
        }, "raw-pull");
        t.setDaemon(true);
        t.start();
        ZMQ.Socket rep = ctx.socket(ZMQ.REP);
        rep.setLinger(1000);
        rep.bind("tcp://127.0.0.1:" + control);
        System.out.println("raw-sink listening " + port + " " + control);
        System.out.flush();
        while (true) {
            byte[] req = rep.recv(0);
            String text = req == null ? "" : new String(req, StandardCharsets.UTF_8);
            long r;
            long b;
            synchronized (counts) {
                r = counts[0];
                b = counts[1];
            }
            rep.send("{\"ok\":true,\"received\":" + r + ",\"bytes\":" + b + "}");
            if (text.contains("quit")) {
                break;
            }
        }
        rep.close(); // lingers until the reply is out
        System.exit(0);
    }
}
