#!/usr/bin/env bash
# Installs every Debian 12 package synthstream needs (CPU flavor). Idempotent.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  build-essential cmake ninja-build ccache pkg-config \
  libtorch-dev libgloo-dev libtomlplusplus-dev libboost-dev libspdlog-dev libfmt-dev doctest-dev \
  nlohmann-json3-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev \
  dataset-fashion-mnist wordnet-base \
  libopenblas0-pthread \
  python3-torchvision
