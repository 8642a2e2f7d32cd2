#!/bin/sh
# Installs quanteval's build and test dependencies from Debian (bookworm) packages.
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --runtime   only the shared libraries the binary needs
set -eu
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
if [ "${1:-}" = "--runtime" ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends \
    libmicrohttpd12 libjansson4 libjpeg62-turbo libzip4 libsqlite3-0 libgomp1 ca-certificates
  exit 0
fi
need=""
for p in build-essential cmake pkg-config git libmicrohttpd-dev libjansson-dev libjpeg62-turbo-dev \
         libzip-dev libsqlite3-dev python3-numpy python3-pil curl wrk; do
  dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $need
fi
