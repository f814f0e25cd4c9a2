"""Span attribute names go through `SpanAttr` everywhere (so a typo is an AttributeError, never an
empty report column), and every name the offline readers read is written by some producer."""

from __future__ import annotations

import ast
import pathlib

import edgespec
from edgespec.telemetry.span_attrs import NAMES, SpanAttr

PACKAGE = pathlib.Path(edgespec.__file__).parent
READERS = ("telemetry/trace_report.py", "telemetry/span_file.py", "telemetry/report_html.py")


def _modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(PACKAGE)): ast.parse(p.read_text()) for p in PACKAGE.rglob("*.py")
            if "v1" not in p.parts and p.name != "span_attrs.py"}


def _attrs_used(tree: ast.Module) -> set[str]:
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "SpanAttr"}


def test_no_module_spells_an_attribute_name_out():
    spelled = {(path, node.value) for path, tree in _modules().items() for node in ast.walk(tree)
               if isinstance(node, ast.Constant) and node.value in NAMES}
    assert spelled == set(), "use SpanAttr.<NAME> instead of the literal"


def test_every_name_used_exists_and_every_name_read_is_written():
    modules = _modules()
    used = {path: _attrs_used(tree) for path, tree in modules.items()}
    defined = {name for name in vars(SpanAttr) if name.isupper()}
    for path, names in used.items():
        assert names <= defined, f"{path}: no such SpanAttr {sorted(names - defined)}"
    read = set().union(*(used[path] for path in READERS))
    written = set().union(*(names for path, names in used.items() if path not in READERS))
    assert read and read <= written, f"read but never written: {sorted(read - written)}"


def test_names_are_unique_and_namespaced():
    values = [v for k, v in vars(SpanAttr).items() if k.isupper()]
    assert len(values) == len(set(values)) == len(NAMES)
    assert all(v.startswith(("edgespec.", "net.")) for v in values)
