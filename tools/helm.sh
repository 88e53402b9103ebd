#!/usr/bin/env bash
# Builds helm from the Go module pinned in tools/helm (the chart tests render charts/datum
# with it), once, into a per-machine cache keyed by the pin. Prints the binary's path.
#
#   tools/helm.sh          build if missing, print the path of the helm binary
#   tools/helm.sh --path   print the path without building
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=$(awk '$1=="helm.sh/helm/v4" {print $2; exit}' "$here/helm/go.mod")
[ -n "$version" ] || { echo "helm: cannot read the pinned version from tools/helm/go.mod" >&2; exit 1; }

# The key changes whenever the pin or the module's sums change, so a stale cache is never used.
sums=$(cat "$here/helm/go.mod" "$here/helm/go.sum" | sha256sum | cut -c1-12)
cache_root=${DATUM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/datum}
dir="$cache_root/helm/$version-$sums"
bin="$dir/helm"

if [ "${1:-}" = "--path" ]; then echo "$bin"; exit 0; fi
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

# One build at a time per cache: a second caller waits, then finds the binary.
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

command -v go >/dev/null || { echo "helm: Go is needed once, to build helm from tools/helm: install a Go toolchain" >&2; exit 1; }
rm -rf "$dir.partial" && mkdir -p "$dir.partial"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
start=$(date +%s)
echo "helm: building helm $version (first run only)" >&2
(cd "$here/helm" && go build -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$version" \
  -o "$dir.partial/helm" helm.sh/helm/v4/cmd/helm)
rm -rf "$dir" && mv "$dir.partial" "$dir"
echo "helm: built in $(( $(date +%s) - start ))s into $dir" >&2
echo "$bin"
