// ImageJ's own RoiDecoder/RoiEncoder on ROI Manager zips (tests/test_roi_imagej_interop.py).
// java RoiInterop.java IN OUT: print one line per ROI of the zip IN (type|name|c|z|t|x,y;x,y;...),
// then write ImageJ-made ROIs to the zip OUT. One JVM start for both directions.
import ij.gui.PolygonRoi;
import ij.gui.Roi;
import ij.io.RoiDecoder;
import ij.io.RoiEncoder;
import ij.process.FloatPolygon;
import java.io.BufferedOutputStream;
import java.io.DataOutputStream;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;
import java.util.zip.ZipOutputStream;

public class RoiInterop {
    public static void main(String[] args) throws Exception {
        {
            try (ZipInputStream zip = new ZipInputStream(new FileInputStream(args[0]))) {
                ZipEntry entry;
                while ((entry = zip.getNextEntry()) != null) {
                    Roi roi = new RoiDecoder(zip.readAllBytes(), entry.getName()).getRoi();
                    FloatPolygon p = roi.getFloatPolygon();
                    StringBuilder line = new StringBuilder(roi.getTypeAsString() + "|" + roi.getName() + "|"
                        + roi.getCPosition() + "|" + roi.getZPosition() + "|" + roi.getTPosition() + "|");
                    for (int i = 0; i < p.npoints; i++) line.append(p.xpoints[i]).append(',').append(p.ypoints[i]).append(';');
                    System.out.println(line);
                }
            }
        }
        try (ZipOutputStream zip = new ZipOutputStream(new FileOutputStream(args[1]))) {
            DataOutputStream out = new DataOutputStream(new BufferedOutputStream(zip));
            RoiEncoder encoder = new RoiEncoder(out);
            PolygonRoi poly = new PolygonRoi(new float[] {1.5f, 6f, 6f}, new float[] {2f, 2f, 9.25f}, Roi.POLYGON);
            poly.setName("cell");
            poly.setPosition(0, 3, 0);
            Roi rect = new Roi(2, 3, 4, 5);
            rect.setName("box");
            rect.setPosition(0, 1, 0);
            for (Roi roi : new Roi[] {poly, rect}) {
                zip.putNextEntry(new ZipEntry(roi.getName() + ".roi"));
                encoder.write(roi);
                out.flush();
            }
        }
    }
}
