package polystore.fiji;

import ij.IJ;
import ij.ImageJ;
import ij.Macro;
import ij.gui.GenericDialog;
import ij.plugin.PlugIn;

import java.awt.GraphicsEnvironment;
import java.io.File;

/**
 * ImageJ 1 / Fiji entry points of the polystore bridge.
 *
 * <ul>
 * <li>Menu: <i>Plugins &gt; Polystore &gt; Start Polystore Bridge</i> (and <i>Stop</i>,
 *     <i>Status</i>); macro options {@code host=127.0.0.1 port=5580 control=5581 output=/path/folder}.</li>
 * <li>Macro/script: {@code call("polystore.fiji.BridgePlugin.startBridge", "port=5580")}.</li>
 * <li>Command line: {@code java -cp ij.jar:jeromq.jar:polystore_bridge.jar
 *     polystore.fiji.BridgePlugin [--port N] [--control-port M] [--host H] [--output-dir D] [--gui|--headless]}.</li>
 * </ul>
 */
public class BridgePlugin implements PlugIn {
    private static Bridge current;

    /** Menu entry; {@code arg} is "start" (default), "stop" or "status". */
    @Override
    public void run(String arg) {
        if ("stop".equals(arg)) {
            IJ.showStatus(stopBridge());
            return;
        }
        if ("status".equals(arg)) {
            IJ.log(statusText());
            return;
        }
        synchronized (BridgePlugin.class) {
            if (current != null && current.isRunning()) {
                IJ.showMessage("Polystore Bridge", "Already running.\n" + statusText());
                return;
            }
        }
        String options = Macro.getOptions();
        String host = "127.0.0.1";
        int port = Bridge.DEFAULT_PORT;
        int control = -1;
        String output = OutputFolder.defaultFolder().getPath();
        if (options != null) {
            host = Macro.getValue(options, "host", host);
            port = parseInt(Macro.getValue(options, "port", String.valueOf(port)), port);
            control = parseInt(Macro.getValue(options, "control", "-1"), -1);
            output = Macro.getValue(options, "output", output);
        } else if (!GraphicsEnvironment.isHeadless()) {
            GenericDialog gd = new GenericDialog("Polystore Bridge");
            gd.addStringField("Host (127.0.0.1 = this computer only)", host, 15);
            gd.addNumericField("Data port", port, 0);
            gd.addNumericField("Control port (0 = data port + 1)", 0, 0);
            gd.addStringField("Output folder (save_tiff writes only here)", output, 30);
            gd.showDialog();
            if (gd.wasCanceled()) {
                return;
            }
            host = gd.getNextString().trim();
            port = (int) gd.getNextNumber();
            control = (int) gd.getNextNumber();
            output = gd.getNextString().trim();
        }
        if (control <= 0) {
            control = port + 1;
        }
        String msg = startBridge(host, port, control, !GraphicsEnvironment.isHeadless(), new File(output));
        IJ.showStatus(msg);
        IJ.log(msg);
    }

    private static int parseInt(String s, int fallback) {
        try {
            return Integer.parseInt(s.trim());
        } catch (Exception e) {
            return fallback;
        }
    }

    /** Start the bridge in this JVM; returns a one-line message (starts with "ERROR" on failure). */
    public static synchronized String startBridge(String host, int port, int controlPort, boolean gui, File output) {
        if (current != null && current.isRunning()) {
            return "Polystore bridge already running on " + current.endpoint(current.port);
        }
        Bridge b = new Bridge(host, port, controlPort, gui, output);
        try {
            b.start();
        } catch (Exception e) {
            return "ERROR: " + e.getMessage();
        }
        current = b;
        return "Polystore bridge listening: data " + b.endpoint(port) + ", control " + b.endpoint(controlPort)
                + ", output folder " + b.output.root();
    }

    /** Macro form: {@code call("polystore.fiji.BridgePlugin.startBridge", "port=5580 control=5581 output=/data/out")}. */
    public static String startBridge(String options) {
        String o = options == null ? "" : options;
        int port = parseInt(Macro.getValue(o, "port", String.valueOf(Bridge.DEFAULT_PORT)), Bridge.DEFAULT_PORT);
        int control = parseInt(Macro.getValue(o, "control", String.valueOf(port + 1)), port + 1);
        String host = Macro.getValue(o, "host", "127.0.0.1");
        String output = Macro.getValue(o, "output", OutputFolder.defaultFolder().getPath());
        return startBridge(host, port, control, !GraphicsEnvironment.isHeadless(), new File(output));
    }

    /** Stop the bridge started in this JVM (images stay open). */
    public static synchronized String stopBridge() {
        if (current == null || !current.isRunning()) {
            return "Polystore bridge is not running";
        }
        current.stop();
        current = null;
        return "Polystore bridge stopped";
    }

    private static synchronized String statusText() {
        if (current == null || !current.isRunning()) {
            return "Polystore bridge is not running";
        }
        return new String(Wire.write(current.status()), java.nio.charset.StandardCharsets.UTF_8);
    }

    /** Command-line entry: run the bridge (headless, or with the ImageJ window) until "quit". */
    public static void main(String[] args) throws Exception {
        String host = "127.0.0.1";
        int port = Bridge.DEFAULT_PORT;
        int control = -1;
        File output = null;
        boolean gui = !GraphicsEnvironment.isHeadless() && System.getenv("DISPLAY") != null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--port") && i + 1 < args.length) {
                port = Integer.parseInt(args[++i]);
            } else if (a.equals("--control-port") && i + 1 < args.length) {
                control = Integer.parseInt(args[++i]);
            } else if (a.equals("--host") && i + 1 < args.length) {
                host = args[++i];
            } else if (a.equals("--output-dir") && i + 1 < args.length) {
                output = new File(args[++i]);
            } else if (a.equals("--gui")) {
                gui = true;
            } else if (a.equals("--headless")) {
                gui = false;
            } else {
                System.err.println("usage: BridgePlugin [--host H] [--port N] [--control-port M] [--output-dir D] [--gui|--headless]");
                System.exit(2);
            }
        }
        if (control <= 0) {
            control = port + 1;
        }
        if (!gui) {
            System.setProperty("java.awt.headless", "true");
        } else {
            ImageJ ij = new ImageJ();
            ij.exitWhenQuitting(true);
        }
        Bridge b = new Bridge(host, port, control, gui, output);
        b.setOnQuit(new Runnable() {
            public void run() {
                System.exit(0);
            }
        });
        try {
            b.start();
        } catch (Exception e) {
            System.err.println("polystore-fiji-bridge: " + e.getMessage());
            System.exit(3);
        }
        synchronized (BridgePlugin.class) {
            current = b;
        }
        System.out.println("polystore-fiji-bridge listening data=" + b.endpoint(port) + " control="
                + b.endpoint(control) + " gui=" + gui + " output=" + b.output.root() + " pid=" + Bridge.pid());
        System.out.flush();
        b.awaitStop();
        System.exit(0);
    }
}
