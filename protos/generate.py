"""Regenerate the Python stubs of the wire contract: `python protos/generate.py [OUT_DIR]`.

Writes `edgespec/v1/*_pb2.py`, `*_pb2.pyi` and `*_pb2_grpc.py` under OUT_DIR (default:
`services/`, where they are committed). grpcio-tools must equal the pinned grpcio; the test
suite regenerates into a temporary folder and fails if the committed stubs are missing or stale.
"""

import pathlib
import sys

from grpc_tools import protoc

PROTOS = pathlib.Path(__file__).resolve().parent


def generate(out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Run protoc over every proto; return the files it wrote."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.glob("edgespec/v1/*.proto"))
    args = ["protoc", f"-I{PROTOS}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}", *sources]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted((out_dir / "edgespec" / "v1").glob("*_pb2*.py*"))


if __name__ == "__main__":
    target = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else PROTOS.parent / "services"
    for path in generate(target):
        print(path)
