"""The client side of the CLI — `edgespec generate` (and the prompt flags `demo` shares): the
SDK's generate options as flags of the same names, `--acceptance-param` parsed by the proto's
field types, and the command that streams one generation. Torch-free like the SDK it drives; it
does not dispatch commands (`cli.py`) nor serve anything (`service_cli.py`).
"""

from __future__ import annotations

import argparse

from edgespec.security_flags import add_client_security_flags, sdk_connection
from edgespec.service_cli import DEFAULT_DRAFT_PORT


def add_generate_flags(p: argparse.ArgumentParser, prompt_required: bool = True) -> None:
    """The SDK's generate options as flags of the same names; unset (None) ones are left to the server."""
    p.add_argument("--prompt", required=prompt_required, help="prompt text (chat template applied)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="most tokens to generate")
    p.add_argument("--temperature", type=float, default=None, help="0 is greedy")
    p.add_argument("--top-k", type=int, default=None, help="0 disables")
    p.add_argument("--top-p", type=float, default=None, help="nucleus mass in (0, 1]")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--acceptance", default=None,
                   help="exact | rejection (default by temperature); lossy: fly | dropmatch | semantic")
    p.add_argument("--acceptance-param", action="append", default=[], metavar="NAME=VALUE",
                   help="a lossy rule's parameter, repeatable (e.g. window=3, dropout_criterion=naive)")
    p.add_argument("--draft-length", default=None,
                   help="draft-length policy: fixed, heuristic, adaedl, svip, auto, server")
    p.add_argument("--k", type=int, default=None, help="draft tokens per round (first round if adaptive)")
    p.add_argument("--k-max", type=int, default=None, help="cap for adaptive policies")
    p.add_argument("--proactive", action="store_true", help="draft ahead while each verdict is in flight")
    p.add_argument("--early-stop", default=None, help="auto's entropy stop: adaedl, svip, none")
    p.add_argument("--raw", action="store_true", help="skip the chat template")
    p.add_argument("--ignore-eos", action="store_true", help="generate --max-new-tokens, past end-of-sequence")


def generate_options(a: argparse.Namespace) -> dict:
    """The SDK's generate options from the flags of the same names (None: left to the server)."""
    from edgespec_client.convert import OPTIONS
    options = {name: getattr(a, name) for name in OPTIONS if getattr(a, name, None) is not None}
    if a.acceptance_param:
        options["acceptance_params"] = acceptance_params(a.acceptance_param)
    return options


def acceptance_params(pairs: list[str]) -> dict:
    """NAME=VALUE strings -> a dict, each VALUE parsed as the type of its field in common.proto's
    AcceptanceParams (an unknown NAME is passed on as text: the SDK names it)."""
    from google.protobuf.descriptor import FieldDescriptor
    from edgespec.v1 import common_pb2
    parse = {FieldDescriptor.CPPTYPE_FLOAT: float, FieldDescriptor.CPPTYPE_DOUBLE: float,
             FieldDescriptor.CPPTYPE_INT32: int, FieldDescriptor.CPPTYPE_INT64: int,
             FieldDescriptor.CPPTYPE_UINT32: int, FieldDescriptor.CPPTYPE_UINT64: int}
    fields = common_pb2.AcceptanceParams.DESCRIPTOR.fields_by_name
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--acceptance-param: expected NAME=VALUE, got {pair!r}")
        kind = parse.get(fields[name].cpp_type, str) if name in fields else str
        try:
            out[name] = kind(value)
        except ValueError:
            raise ValueError(f"--acceptance-param {name}: expected {kind.__name__} text, got {value!r}") from None
    return out


def run_generate_command(a: argparse.Namespace) -> int:
    from edgespec.console import run_generate
    from edgespec.telemetry.tracing import setup_tracing
    tracing = setup_tracing("edgespec-cli", instrument_grpc=False)  # the SDK's `generate` span, if OTEL_* asks
    try:
        return run_generate(a.server, a.prompt, generate_options(a), as_json=a.json, timeout=a.timeout,
                            connection=sdk_connection(a))
    finally:
        if tracing is not None:
            tracing.shutdown()


def add_generate_command_flags(p: argparse.ArgumentParser) -> None:
    add_generate_flags(p)
    p.add_argument("--server", default=f"127.0.0.1:{DEFAULT_DRAFT_PORT}", help="SDK endpoint HOST:PORT")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--timeout", type=float, default=600.0, help="deadline for the call, s")
    add_client_security_flags(p, upstream=False)


def add_demo_flags(p: argparse.ArgumentParser) -> None:
    add_generate_flags(p, prompt_required=False)
    p.add_argument("--model", default="smollm2", help="preset for both draft and target")
