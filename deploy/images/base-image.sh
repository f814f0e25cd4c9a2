#!/usr/bin/env bash
# Make the base image the Dockerfiles start from (`python:3.11-slim` by default) on a host that
# cannot pull it: a Debian bookworm root file system from debootstrap (minbase + python3, pip,
# venv, CA certificates), from the mirror apt already uses, imported with `docker import` under
# the same tag, so `FROM python:3.11-slim` needs no edit (the classic builder does not pull a tag
# that exists). Differences from the real image: Debian's Python 3.11.2 in /usr/bin, pip 23.0.1.
# Does nothing when the tag is present or can be pulled. It does NOT build the project's images.
#   deploy/images/base-image.sh [TAG]                  (default python:3.11-slim)
# Environment: DOCKER (default docker), MIRROR (default: the first URIs: of debian.sources),
#   BASE_CACHE=FILE.tar: reuse (or save) the root file system tarball between runs (optional).
set -euo pipefail
TAG=${1:-python:3.11-slim}
DOCKER=${DOCKER:-docker}
if $DOCKER image inspect "$TAG" >/dev/null 2>&1; then
  echo "base-image: $TAG present"; exit 0
fi
if timeout 120 $DOCKER pull -q "$TAG" >/dev/null 2>&1; then
  echo "base-image: $TAG pulled"; exit 0
fi
tarball=${BASE_CACHE:-}
if [ -z "$tarball" ] || [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { echo "base-image: cannot pull $TAG and no debootstrap (apt-get install debootstrap)" >&2; exit 1; }
  MIRROR=${MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "base-image: $TAG cannot be pulled: debootstrap bookworm from $MIRROR"
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
    bookworm "$work/rootfs" "$MIRROR" > "$work/debootstrap.log" 2>&1 \
    || { tail -5 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/usr/share/doc \
         "$work"/rootfs/usr/share/man "$work"/rootfs/usr/share/locale
  tarball=${tarball:-$work/rootfs.tar}
  tar -C "$work/rootfs" -cf "$tarball" .
fi
$DOCKER import --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' "$tarball" "$TAG" >/dev/null
echo "base-image: $TAG made from debootstrap ($($DOCKER image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
