#!/usr/bin/env bash
# Run on a Debian machine with network: gathers what the offline GPU box lacks into .deps/
# (ignored by git; carry it to the GPU box). Today that is the TOML++ headers (used header-only).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps/debs
(cd .deps/debs && apt-get download libtomlplusplus-dev)
for deb in .deps/debs/*.deb; do dpkg -x "$deb" .deps; done
test -f .deps/usr/include/toml++/toml.h
echo "TOML++ headers in $(pwd)/.deps/usr/include"
