#!/usr/bin/env bash
# Builds the tiny direct-kernel VM image the local provider's VM tests boot, and prints the
# directory holding it (`vmlinux` + `initrd.img`): an image-library entry of the "kernel"
# form (see providers/local/src/vm/mod.rs).
#
# The kernel is Debian's 6.1 (`apt-get download`, so it needs the apt lists tools/setup.sh
# fetches), decompressed to an uncompressed `vmlinux` that QEMU boots via PVH in about 2 s
# under TCG. The initramfs is busybox-static, the virtio and isofs modules, and an `/init`
# that loads them, mounts the NoCloud seed (volume `cidata`), applies the addresses of the
# seed's network-config, prints `DATUM-VM-READY` on the serial console, answers every TCP
# connection on port 8080 with `datum-vm-ok`, and runs forever.
#
# Cached under ${XDG_CACHE_HOME:-$HOME/.cache}/datum/vm-image/<kernel package>-<script hash>;
# a second run prints the cached directory at once.
set -euo pipefail

kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
kernel_pkg=$(kernel_package)
if [ -z "$kernel_pkg" ]; then
  # A machine whose apt lists were never fetched (or were cleaned).
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2 || true
  kernel_pkg=$(kernel_package)
fi
if [ -z "$kernel_pkg" ]; then
  echo "vm-image: apt knows no linux-image-amd64; check the Debian sources in /etc/apt" >&2
  exit 1
fi
script_hash=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
out="${XDG_CACHE_HOME:-$HOME/.cache}/datum/vm-image/${kernel_pkg}-${script_hash}"
if [ -s "$out/vmlinux" ] && [ -s "$out/initrd.img" ]; then
  echo "$out"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "$kernel_pkg" >/dev/null)
dpkg -x "$work"/"$kernel_pkg"_*.deb "$work/kernel"

# vmlinux: the XZ stream inside the bzImage, decompressed.
python3 - "$work"/kernel/boot/vmlinuz-* "$work/vmlinux" <<'EOF'
import lzma, sys
data = open(sys.argv[1], "rb").read()
start = data.find(b"\xfd7zXZ\x00")
if start < 0:
    sys.exit("vm-image: no XZ stream in " + sys.argv[1])
elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
if not elf.startswith(b"\x7fELF"):
    sys.exit("vm-image: the decompressed kernel is not an ELF file")
open(sys.argv[2], "wb").write(elf)
EOF

root="$work/initrd"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,seed,lib/modules}
cp /bin/busybox "$root/bin/busybox"
# Load order from the modules' `depends=` (there is no modprobe in the image).
for m in virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio virtio_pci \
  failover net_failover virtio_net virtio_blk cdrom isofs; do
  ko=$(find "$work/kernel/lib/modules" -name "$m.ko" | head -n1)
  if [ -z "$ko" ]; then
    echo "vm-image: module $m.ko is not in $kernel_pkg" >&2
    exit 1
  fi
  cp "$ko" "$root/lib/modules/"
  echo "$m" >>"$root/lib/modules/order"
done

cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec >/dev/console 2>&1
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko; done
ip link set lo up
# The NoCloud seed: the iso9660 disk holding meta-data.
sleep 0.2
for d in /dev/vd? /dev/sr?; do
  [ -b "$d" ] || continue
  if mount -t iso9660 -o ro "$d" /seed 2>/dev/null; then
    [ -f /seed/meta-data ] && break
    umount /seed
  fi
done
if [ -f /seed/meta-data ]; then
  hostname "$(awk '/^local-hostname:/ { print $2 }' /seed/meta-data)"
  echo "DATUM-VM-SEED $(awk '/^instance-id:/ { print $2 }' /seed/meta-data)"
fi
# network-config v2 as the provider writes it: per interface `macaddress`, `addresses`
# and `routes` (`via`); everything else is ignored.
if [ -f /seed/network-config ]; then
  awk '
    /macaddress:/ { gsub(/["]/, "", $2); mac = $2 }
    /^ *- [0-9a-fA-F.:]+\/[0-9]+ *$/ { print "addr", mac, $2 }
    /via:/ { print "route", mac, $2 }
  ' /seed/network-config >/tmp/net
  while read -r kind mac value; do
    dev=""
    for n in /sys/class/net/*; do
      [ "$(cat "$n/address")" = "$mac" ] && dev=${n##*/}
    done
    [ -n "$dev" ] || continue
    ip link set "$dev" up
    case "$kind" in
      addr) ip addr add "$value" dev "$dev" ;;
      route) ip route add default via "$value" dev "$dev" 2>/dev/null || true ;;
    esac
  done </tmp/net
fi
for b in /sys/block/vd*; do
  [ -e "$b" ] && echo "DATUM-VM-DISK ${b##*/} $(cat "$b/size")"
done
ip -o addr show | awk '$2 != "lo" { print "DATUM-VM-ADDR", $2, $4 }'
( while true; do echo datum-vm-ok | nc -l -p 8080 >/dev/null 2>&1; done ) &
echo DATUM-VM-READY
while true; do sleep 3600; done
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.img"

mkdir -p "$out"
mv "$work/vmlinux" "$work/initrd.img" "$out/"
# Earlier builds (another kernel or script version) are not used any more.
find "$(dirname "$out")" -mindepth 1 -maxdepth 1 ! -name "$(basename "$out")" -exec rm -rf {} +
echo "$out"
