#!/usr/bin/env bash
# Installs the operating-system packages the system and its tests use, when missing.
# Idempotent and quiet when everything is there. Needs root (or sudo) only to install.
set -euo pipefail

need=()
command -v setpriv >/dev/null || need+=(util-linux)   # parent-death signals for child processes
command -v kill >/dev/null || need+=(procps)
command -v flock >/dev/null || need+=(util-linux)
command -v kubectl >/dev/null || need+=(kubernetes-client)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
