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

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # Packages such as containerd and docker-registry would start system daemons on
  # install; the project starts its own, so forbid that while installing.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy"
    trap '$sudo rm -f "$policy"' EXIT
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
