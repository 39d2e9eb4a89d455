package polystore.fiji;

import java.io.File;
import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;

/**
 * The one folder the bridge writes files into ({@code save_tiff}, {@code screenshot}),
 * chosen when the bridge starts (default {@code ~/polystore-fiji}).
 *
 * <p>A requested path is taken relative to the folder, or must be an absolute path
 * inside it. Refused: paths that leave the folder ({@code ..}), any symbolic link
 * on the way from the folder to the file (or the file itself), an existing file
 * unless the request says {@code overwrite}. Files are written under a temporary
 * name in the target folder and then renamed into place, so a failed write leaves
 * nothing half-written and a concurrent symlink cannot redirect the write.
 */
final class OutputFolder {
    /** A request the folder rules refuse. */
    static final class Refused extends Exception {
        private static final long serialVersionUID = 1L;

        Refused(String message) {
            super(message);
        }
    }

    /** Writes the file at the given temporary path; returns false if it could not. */
    interface Writer {
        boolean write(File tmp) throws Exception;
    }

    /** The default folder: {@code <user.home>/polystore-fiji}. */
    static File defaultFolder() {
        return new File(System.getProperty("user.home", "."), "polystore-fiji");
    }

    private final Path root;

    OutputFolder(File folder) {
        this.root = folder.getAbsoluteFile().toPath().normalize();
    }

    /** The folder as given (absolute). */
    Path root() {
        return root;
    }

    /** The folder's real path, created (owner-only on POSIX systems) if missing. */
    private Path realRoot() throws Refused {
        try {
            if (!Files.isDirectory(root)) {
                Files.createDirectories(root);
                root.toFile().setReadable(false, false);
                root.toFile().setReadable(true, true);
                root.toFile().setExecutable(false, false);
                root.toFile().setExecutable(true, true);
            }
            return root.toRealPath();
        } catch (IOException e) {
            throw new Refused("cannot create the output folder " + root + ": " + e);
        }
    }

    /**
     * Where a request for {@code requested} may write: inside the folder, no symlink on
     * the way, an allowed extension, not existing unless {@code overwrite}.
     */
    Path resolve(String requested, boolean overwrite, String... extensions) throws Refused {
        Path real = realRoot();
        Path p = Paths.get(requested);
        Path relative;
        if (p.isAbsolute()) {
            Path n = p.normalize();
            if (n.startsWith(root)) {
                relative = root.relativize(n);
            } else if (n.startsWith(real)) {
                relative = real.relativize(n);
            } else {
                throw new Refused("'" + requested + "' is outside the bridge's output folder " + root
                        + "; pass a path inside it (or relative to it), or start the bridge with --output-dir");
            }
        } else {
            relative = p.normalize();
        }
        if (relative.toString().isEmpty() || relative.startsWith("..")) {
            throw new Refused("'" + requested + "' leaves the bridge's output folder " + root);
        }
        String lower = relative.getFileName().toString().toLowerCase();
        boolean allowed = false;
        for (String ext : extensions) {
            allowed |= lower.endsWith(ext);
        }
        if (!allowed) {
            throw new Refused("the bridge writes only " + String.join(" / ", extensions) + " files, got '" + requested + "'");
        }
        Path target = real;
        for (Path part : relative) {
            target = target.resolve(part);
            if (Files.isSymbolicLink(target)) {
                throw new Refused("'" + requested + "' goes through the symbolic link " + target + "; the bridge never writes through links");
            }
        }
        if (Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
            if (Files.isDirectory(target, LinkOption.NOFOLLOW_LINKS)) {
                throw new Refused("'" + requested + "' is a folder");
            }
            if (!overwrite) {
                throw new Refused("'" + target + "' exists; ask with overwrite=true to replace it");
            }
        }
        return target;
    }

    /** Write through {@code writer} into a temporary file next to {@code target}, then rename into place. */
    static void write(Path target, boolean overwrite, Writer writer) throws Refused {
        Path dir = target.getParent();
        Path tmp = null;
        try {
            Files.createDirectories(dir);
            if (!dir.toRealPath().equals(dir)) {
                throw new Refused("the folder " + dir + " goes through a symbolic link");
            }
            String name = target.getFileName().toString();
            String ext = name.substring(name.lastIndexOf('.'));
            tmp = Files.createTempFile(dir, ".polystore-", ext);
            if (!writer.write(tmp.toFile())) {
                throw new Refused("ImageJ could not write '" + target + "'");
            }
            if (overwrite) {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE); // rename: replaces a link, never writes through it
            } else {
                try {
                    Files.createLink(target, tmp); // atomic: fails if the name exists
                } catch (FileAlreadyExistsException e) {
                    throw new Refused("'" + target + "' exists; ask with overwrite=true to replace it");
                } catch (UnsupportedOperationException | IOException e) {
                    Files.move(tmp, target); // no hard links here: refuses an existing name too
                    tmp = null;
                }
            }
        } catch (Refused e) {
            throw e;
        } catch (FileAlreadyExistsException e) {
            throw new Refused("'" + target + "' exists; ask with overwrite=true to replace it");
        } catch (Exception e) {
            throw new Refused("could not write '" + target + "': " + e);
        } finally {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException e) {
                    // leave it; the name starts with a dot
                }
            }
        }
    }
}
