#!/usr/bin/env bash
# Installs the operating-system packages the system and its tests use, when missing.
# Idempotent and quiet when everything is there. Needs root (or sudo) only to install.
set -euo pipefail

need=()
command -v setpriv >/dev/null || need+=(util-linux)   # parent-death signals for child processes
command -v kill >/dev/null || need+=(procps)
command -v flock >/dev/null || need+=(util-linux)
command -v kubectl >/dev/null || need+=(kubernetes-client)
# The local provider (providers/local): containers, images, network namespaces, nftables.
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
command -v protoc >/dev/null || need+=(protobuf-compiler)          # containerd-client's gRPC build
command -v docker-registry >/dev/null || need+=(docker-registry)   # the tests' loopback registry
command -v umoci >/dev/null || need+=(umoci)                       # builds the tests' image
command -v skopeo >/dev/null || need+=(skopeo)                     # pushes it to the registry
[ -x /bin/busybox ] || need+=(busybox-static)                      # the image's only binary
# VMs (providers/local/src/vm): QEMU, NoCloud seeds, the test image's initramfs.
command -v cloud-localds >/dev/null || need+=(cloud-image-utils)
command -v cpio >/dev/null || need+=(cpio)
backports=()
# bookworm's qemu-system-x86 (7.2) conflicts with a qemu-utils from backports (10.x), which
# some machine images ship: take both from backports, adding the suite (and keeping it).
command -v qemu-system-x86_64 >/dev/null || backports+=(qemu-system-x86)
command -v qemu-img >/dev/null || backports+=(qemu-utils)

if [ ${#need[@]} -gt 0 ] || [ ${#backports[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]} ${backports[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # Packages such as containerd and docker-registry would start system daemons on
  # install; the project starts its own, so forbid that while installing.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy"
    trap '$sudo rm -f "$policy"' EXIT
  fi
  if [ ${#backports[@]} -gt 0 ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # The same mirror as the existing Debian source.
    uri=$(sed -n 's/^URIs:[[:space:]]*\(.*debian\/\?\)[[:space:]]*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1)
    [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "${uri:-http://deb.debian.org/debian}" | $sudo tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
  fi
  $sudo apt-get update -qq
  if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  if [ ${#backports[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      -t bookworm-backports "${backports[@]}" >/dev/null
  fi
fi
