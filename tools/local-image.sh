#!/usr/bin/env bash
# Builds the tiny busybox-static OCI image the local provider's tests run, into an OCI
# layout at $1 (default: ./busybox-oci); the other arguments are the image's command (default: /bin/sh). Needs umoci and busybox-static (tools/setup.sh).
# Offline and fast (about 0.2 s). The tests serve it from a loopback docker-registry.
set -euo pipefail
out=${1:-busybox-oci}
shift || true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/rootfs/{bin,sbin,etc,proc,sys,dev,tmp,root,usr/bin,usr/sbin,var,run}
cp /bin/busybox "$work/rootfs/bin/"
for a in $("$work/rootfs/bin/busybox" --list); do
  [ "$a" = busybox ] || ln -sf busybox "$work/rootfs/bin/$a"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
echo 'root:x:0:' > "$work/rootfs/etc/group"
rm -rf "$out"
umoci init --layout "$out" >/dev/null
umoci new --image "$out:latest" >/dev/null
umoci unpack --image "$out:latest" "$work/bundle" >/dev/null
cp -a "$work/rootfs/." "$work/bundle/rootfs/"
umoci repack --image "$out:latest" "$work/bundle" >/dev/null
cmd=(); for a in "${@:-/bin/sh}"; do cmd+=(--config.cmd="$a"); done
umoci config --image "$out:latest" "${cmd[@]}" \
  --config.env=PATH=/bin:/sbin:/usr/bin:/usr/sbin --architecture=amd64 --os=linux >/dev/null
