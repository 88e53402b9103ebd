#!/usr/bin/env bash
# The test command: sets up what the tests need (once per machine), then runs formatting,
# lints and every test against a real control plane.
#
#   tools/test.sh                 everything
#   tools/test.sh -p datum-api    extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Build output lives in a per-machine cache, shared by every checkout and by CI.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/datum/target}

# Every checkout (and every CI run) builds into that one cache, so stale artifacts pile up
# there; a full disk once failed CI mid-link. Incremental state is two thirds of the cache
# and a one-shot CI build never reuses it.
if [[ -n ${CI:-} ]]; then export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}; fi
free_gib() { mkdir -p "$CARGO_TARGET_DIR" && df --output=avail -BG "$CARGO_TARGET_DIR" | tail -1 | tr -dc 0-9; }
if (( $(free_gib) < 30 )); then
  echo "== $(free_gib) GiB free: dropping the build cache's incremental state" >&2
  rm -rf "$CARGO_TARGET_DIR"/*/incremental
  if (( $(free_gib) < 30 )); then
    echo "== still $(free_gib) GiB free: emptying the build cache" >&2
    rm -rf "${CARGO_TARGET_DIR:?}"/*
  fi
fi

tools/setup.sh
echo "== control plane binaries" >&2
tools/control-plane.sh >/dev/null
# helm, for the chart tests (cmd/datum/tests/packaging.rs); built once per pin.
DATUM_HELM=$(tools/helm.sh)
export DATUM_HELM

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test" >&2
cargo test --workspace --locked "$@"
