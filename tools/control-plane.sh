#!/usr/bin/env bash
# Builds the test/local control plane (etcd, kube-apiserver, kube-controller-manager)
# from the pinned Go modules in tools/etcd and tools/kube, once, into a per-machine
# cache keyed by the pinned versions. Prints the directory holding the binaries.
#
#   tools/control-plane.sh          build if missing, print the bin directory
#   tools/control-plane.sh --path   print the bin directory without building
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pinned() { awk -v m="$2" '$1==m {print $2; exit} $1=="require" && $2==m {print $3; exit}' "$1"; }
kube_version=$(pinned "$here/kube/go.mod" k8s.io/kubernetes)
etcd_version=$(pinned "$here/etcd/go.mod" go.etcd.io/etcd/server/v3)
[ -n "$kube_version" ] && [ -n "$etcd_version" ] || { echo "control-plane: cannot read pinned versions from tools/*/go.mod" >&2; exit 1; }

# The key changes whenever a pin or a module's sums change, so a stale cache is never used.
sums=$(cat "$here/kube/go.mod" "$here/kube/go.sum" "$here/etcd/go.mod" "$here/etcd/go.sum" "$here/etcd/main.go" | sha256sum | cut -c1-12)
cache_root=${DATUM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/datum}
bin="$cache_root/control-plane/kube-$kube_version-etcd-$etcd_version-$sums"

if [ "${1:-}" = "--path" ]; then echo "$bin"; exit 0; fi
if [ -x "$bin/etcd" ] && [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ]; then
  echo "$bin"; exit 0
fi

# One build at a time per cache: a second caller waits, then finds the binaries.
mkdir -p "$(dirname "$bin")"
exec 9>"$bin.lock"
flock 9
if [ -x "$bin/etcd" ] && [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ]; then
  echo "$bin"; exit 0
fi

command -v go >/dev/null || { echo "control-plane: Go is needed once, to build the control plane from tools/kube and tools/etcd: install a Go toolchain (any recent one fetches the pinned toolchain through the Go module proxy)" >&2; exit 1; }
rm -rf "$bin.partial" && mkdir -p "$bin.partial"
minor=$(echo "$kube_version" | cut -d. -f2)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

start=$(date +%s)
echo "control-plane: building etcd $etcd_version (first run only)" >&2
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin.partial/etcd" .)
for cmd in kube-apiserver kube-controller-manager; do
  echo "control-plane: building $cmd $kube_version (first run only, several minutes)" >&2
  (cd "$here/kube" && go build -trimpath -ldflags "$ldflags" -o "$bin.partial/$cmd" "k8s.io/kubernetes/cmd/$cmd")
done
rm -rf "$bin" && mv "$bin.partial" "$bin"
echo "control-plane: built in $(( $(date +%s) - start ))s into $bin" >&2
echo "$bin"
