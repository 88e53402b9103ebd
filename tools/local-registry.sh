#!/usr/bin/env bash
# A loopback image registry holding a tiny test image, to try Datum on one machine with no
# internet (docs/quickstart.md uses it).
#
#   tools/local-registry.sh [start]   serve $DATUM_REGISTRY (default 127.0.0.1:5000) and push
#                                     datum/hello:v1 (busybox httpd answering on port 8080);
#                                     prints the image reference
#   tools/local-registry.sh stop      stop it
#
# State lives in $DATUM_REGISTRY_DIR (default ${XDG_CACHE_HOME:-~/.cache}/datum/registry/<host-port>).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
host=${DATUM_REGISTRY:-127.0.0.1:5000}
dir=${DATUM_REGISTRY_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/datum/registry/${host//[:.]/-}}

case ${1:-start} in
  stop)
    if [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null; then
      echo "stopped the registry on $host" >&2
    fi
    rm -f "$dir/pid"
    exit 0
    ;;
  start) ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

tools/setup.sh
mkdir -p "$dir"
answers() { (exec 3<>"/dev/tcp/${host%:*}/${host##*:}") 2>/dev/null; }
if ! answers; then
  cat >"$dir/config.yml" <<EOF
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $dir/data } }
http: { addr: $host }
EOF
  nohup docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 50); do answers && break; sleep 0.1; done
  answers || { echo "the registry did not start; see $dir/registry.log" >&2; exit 1; }
fi
if [ ! -f "$dir/layout/index.json" ]; then
  tools/local-image.sh "$dir/layout" /bin/sh -c \
    'mkdir -p /www && echo hello from datum > /www/index.html && exec httpd -f -p 8080 -h /www'
fi
skopeo copy --quiet --dest-tls-verify=false "oci:$dir/layout:latest" "docker://$host/datum/hello:v1"
echo "$host/datum/hello:v1"
