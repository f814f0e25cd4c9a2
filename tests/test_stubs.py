"""The committed protobuf/gRPC stubs exist and match what `python protos/generate.py` produces
from the current protos (fails when a .proto was edited without regenerating)."""

import filecmp
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "services" / "edgespec" / "v1"


def _generate(out: pathlib.Path) -> list[pathlib.Path]:
    spec = importlib.util.spec_from_file_location("generate_protos", ROOT / "protos" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate(out)


def test_stubs_are_present_and_fresh(tmp_path):
    fresh = _generate(tmp_path)
    protos = sorted(p.stem for p in (ROOT / "protos" / "edgespec" / "v1").glob("*.proto"))
    assert len(fresh) == 3 * len(protos)  # _pb2.py, _pb2.pyi, _pb2_grpc.py per proto
    for path in fresh:
        committed = COMMITTED / path.name
        assert committed.exists(), f"missing stub {committed.name}: run `make protos`"
        assert filecmp.cmp(path, committed, shallow=False), f"stale stub {committed.name}: run `make protos`"


def test_every_rpc_and_field_is_commented():
    import re
    for proto in (ROOT / "protos" / "edgespec" / "v1").glob("*.proto"):
        lines = proto.read_text().splitlines()
        for i, line in enumerate(lines):
            declares = re.match(r"\s*(rpc |(repeated |optional )?[\w.]+ \w+ = \d+;|\w+ = \d+;)", line)
            if declares and "syntax" not in line:
                assert lines[i - 1].strip().startswith("//"), f"{proto.name}:{i + 1} lacks a comment: {line.strip()}"


def test_messages_both_services_speak_live_in_common_proto():
    # the draft service imports no target message; the names on the wire are unchanged (edgespec.v1.*)
    from edgespec.v1 import common_pb2, draft_pb2, target_pb2
    assert [d.name for d in draft_pb2.DESCRIPTOR.dependencies] == ["edgespec/v1/common.proto"]
    shared = {"SessionOpen", "SessionOpened", "DraftBlock", "Verdict", "InfoRequest", "ModelInfo"}
    assert shared <= set(common_pb2.DESCRIPTOR.message_types_by_name)
    assert not shared & set(target_pb2.DESCRIPTOR.message_types_by_name)
    for module, service in ((draft_pb2, "Drafter"), (target_pb2, "Verifier")):
        info = module.DESCRIPTOR.services_by_name[service].methods_by_name["Info"]
        assert info.output_type.full_name == "edgespec.v1.ModelInfo"
        assert info.output_type is common_pb2.ModelInfo.DESCRIPTOR
