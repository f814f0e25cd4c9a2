#!/usr/bin/env bash
# Build a Prometheus image from Debian's `prometheus` package (apt-get download on this host, the
# binary unpacked with dpkg-deb; no network inside the build) and tag it as the compose file's
# prometheus image, for hosts that cannot pull it. It does NOT start anything.
#   deploy/images/prometheus.sh [TAG] [BASE_IMAGE]   (default: the image ref in docker-compose.yml)
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG=${1:-$(awk '/^  prometheus:/{p=1} p && /image:/{print $2; exit}' docker-compose.yml)}
BASE=${2:-python:3.11-slim}
DOCKER=${DOCKER:-docker}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
( cd "$work" && apt-get download -q -o APT::Sandbox::User=root prometheus >/dev/null )
dpkg-deb -x "$work"/prometheus_*.deb "$work/pkg"
cp deploy/images/prometheus/Dockerfile "$work/Dockerfile"
cp "$work/pkg/usr/bin/prometheus" "$work/prometheus"
$DOCKER build -q --network none --build-arg BASE_IMAGE="$BASE" -t "$TAG" "$work" >/dev/null
echo "prometheus: $TAG from Debian's $(dpkg-deb -f "$work"/prometheus_*.deb Package Version | paste -sd' ')"
