#!/bin/sh
# Build fiji_bridge/build/polystore_bridge.jar (an ImageJ 1 / Fiji plugin).
#
#   fiji_bridge/build.sh                 # compile against the Debian jars
#   fiji_bridge/build.sh /path/Fiji.app  # compile against the jars of a Fiji install
#
# Environment: IJ_JAR, JEROMQ_JAR and GSON_JAR override the jar locations; JAVAC the
# compiler; BUILD_DIR the output folder (default fiji_bridge/build).
# Output: polystore_bridge.jar, plus classpath.txt listing the ImageJ, JeroMQ and gson
# jars it was compiled against (the Python launcher reads it).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
fiji=${1:-}
JAVAC=${JAVAC:-javac}

find_jar() { # $1 dir, $2 name pattern
    ls "$1"/$2 2>/dev/null | head -n 1
}

if [ -n "$fiji" ]; then
    [ -d "$fiji/jars" ] || { echo "build.sh: $fiji is not a Fiji.app folder (no jars/)" >&2; exit 2; }
    IJ_JAR=${IJ_JAR:-$(find_jar "$fiji/jars" 'ij-1*.jar')}
    JEROMQ_JAR=${JEROMQ_JAR:-$(find_jar "$fiji/jars" 'jeromq-*.jar')}
    [ -n "$JEROMQ_JAR" ] || JEROMQ_JAR=$(find_jar "$fiji/plugins" 'jeromq*.jar')
    GSON_JAR=${GSON_JAR:-$(find_jar "$fiji/jars" 'gson-*.jar')}
fi
IJ_JAR=${IJ_JAR:-/usr/share/java/ij.jar}
JEROMQ_JAR=${JEROMQ_JAR:-/usr/share/java/jeromq.jar}
GSON_JAR=${GSON_JAR:-/usr/share/java/gson.jar}
for jar in "$IJ_JAR" "$JEROMQ_JAR" "$GSON_JAR"; do
    [ -f "$jar" ] || {
        echo "build.sh: missing $jar" >&2
        echo "  Debian/Ubuntu: apt-get install imagej libjeromq-java libgoogle-gson-java openjdk-17-jdk-headless" >&2
        echo "  or set IJ_JAR / JEROMQ_JAR / GSON_JAR, or pass a Fiji.app folder" >&2
        exit 2
    }
done
command -v "$JAVAC" >/dev/null 2>&1 || { echo "build.sh: no javac (apt-get install openjdk-17-jdk-headless)" >&2; exit 2; }

out=${BUILD_DIR:-$here/build}
mkdir -p "$out"
out=$(cd "$out" && pwd)
# Build in a private directory and rename into place, so concurrent builds
# (parallel test runs) never see or leave a half-written jar.
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/classes"
"$JAVAC" --release 8 -nowarn -Xlint:-options -encoding UTF-8 \
    -cp "$IJ_JAR:$JEROMQ_JAR:$GSON_JAR" -d "$work/classes" \
    $(find "$here/src" -name '*.java' | sort)
cp "$here/plugins.config" "$work/classes/plugins.config"
(cd "$work/classes" && jar cf "$work/polystore_bridge.jar" plugins.config $(find polystore -name '*.class' | sort))
printf '%s\n%s\n%s\n' "$IJ_JAR" "$JEROMQ_JAR" "$GSON_JAR" > "$work/classpath.txt"
mv -f "$work/classpath.txt" "$out/classpath.txt"
mv -f "$work/polystore_bridge.jar" "$out/polystore_bridge.jar"
echo "$out/polystore_bridge.jar"
