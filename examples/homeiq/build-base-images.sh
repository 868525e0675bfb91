#!/bin/sh
# Build the two images every lab compose project builds on:
#   homeiq-base:latest      FROM scratch + static busybox + service.sh
#   homeiq-influxdb:latest  homeiq-base + the host's influxd (InfluxDB 1.x)
# Nothing is pulled: the binaries come from the host's Debian packages
#   apt-get install -y busybox-static influxdb
# and are copied into the build contexts (git-ignored) first.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
BUSYBOX=${BUSYBOX:-/bin/busybox}
INFLUXD=${INFLUXD:-/usr/bin/influxd}

[ -x "$BUSYBOX" ] || { echo "missing $BUSYBOX: apt-get install -y busybox-static" >&2; exit 1; }
[ -x "$INFLUXD" ] || { echo "missing $INFLUXD: apt-get install -y influxdb" >&2; exit 1; }

cp "$BUSYBOX" "$here/base/busybox"
docker build -t homeiq-base:latest "$here/base"

rootfs="$here/influxdb/rootfs"
rm -rf "$rootfs"
mkdir -p "$rootfs/usr/bin"
cp "$INFLUXD" "$rootfs/usr/bin/influxd"
# Shared libraries at their absolute paths (nothing for a static build).
for lib in $(ldd "$INFLUXD" 2>/dev/null | grep -o '/[^ ]*' || true); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done
docker build -t homeiq-influxdb:latest "$here/influxdb"
