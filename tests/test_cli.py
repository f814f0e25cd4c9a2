"""The `edgespec` console script as a person runs it: real `target` and `draft` processes (tiny
preset) on loopback, `generate --json` with every documented key, `demo`, and bad input giving one
line on stderr, a non-zero exit and no traceback."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from edgespec.demo import start_service, stop_service

STATS_KEYS = {"rounds", "drafted_tokens", "accepted_tokens", "mean_accepted_length", "acceptance_rate",
              "per_position_accepted", "target_forward_passes", "tokens_per_second", "bytes_up",
              "bytes_down", "draft_ms", "verify_ms", "round_trip_ms"}


def edgespec(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgespec", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    target, target_addr = start_service("target", ["--model", "tiny"], pathlib.Path(tmp, "target"))
    try:
        draft, draft_addr = start_service("draft", ["--model", "tiny", "--target", target_addr],
                                          pathlib.Path(tmp, "draft"))
    except BaseException:
        stop_service(target)
        raise
    yield target_addr, draft_addr
    stop_service(draft)
    stop_service(target)
    assert draft.returncode == 0 and target.returncode == 0  # SIGTERM: graceful, clean exit


def test_generate_json_has_every_documented_field(servers):
    _, draft = servers
    out = edgespec("generate", "--server", draft, "--prompt", "hello", "--max-new-tokens", "12", "--k", "3", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert {"text", "token_ids", "prompt_token_ids", "finish_reason", "acceptance", "lossless", "stats"} <= set(result)
    assert STATS_KEYS <= set(result["stats"])
    assert result["acceptance"] == "exact" and result["lossless"] is True
    assert result["stats"]["target_forward_passes"] == 1 + result["stats"]["rounds"]
    assert set(result["stats"]["draft_ms"]) == {"p50", "p90", "p99", "mean"}


def test_generate_streams_text_then_stats(servers):
    _, draft = servers
    out = edgespec("generate", "--server", draft, "--prompt", "hello", "--max-new-tokens", "8",
                   "--temperature", "0.8", "--top-p", "0.9", "--seed", "3")
    assert out.returncode == 0, out.stderr
    assert "acceptance: rejection (lossless: true)" in out.stdout and "tau" in out.stdout


@pytest.mark.parametrize("flags,field", [
    (["--k", "40"], "k"), (["--temperature", "-1"], "temperature"), (["--top-p", "2"], "top_p"),
    (["--acceptance", "typo"], "acceptance"), (["--draft-length", "nope"], "draft_length"),
])
def test_bad_generate_input_is_one_line(servers, flags, field):
    _, draft = servers
    out = edgespec("generate", "--server", draft, "--prompt", "hi", *flags)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.startswith("edgespec generate: error:") and field in out.stderr


def test_unreachable_server_is_one_line():
    out = edgespec("generate", "--server", "127.0.0.1:9", "--prompt", "hi", "--timeout", "3")
    assert out.returncode == 1 and "UNAVAILABLE" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_demo_runs_end_to_end_on_the_tiny_preset():
    out = edgespec("demo", "--model", "tiny", "--max-new-tokens", "10", "--prompt", "hi", timeout=300)
    assert out.returncode == 0, out.stderr
    assert "target forward passes" in out.stdout and "acceptance: exact" in out.stdout


@pytest.mark.parametrize("args, field", [
    (["target", "--model", "tiny", "--metrics-listen", "localhost:abc"], "metrics_listen"),
    (["target", "--model", "tiny", "--metrics-listen", "h:99999"], "metrics_listen"),
    (["draft", "--model", "tiny", "--feed-publish", "udp://x"], "feed_publish"),
    (["draft", "--model", "tiny", "--no-orchestrator", "--feed-publish", "tcp://127.0.0.1:0"], "feed_publish"),
    (["trace-report", "/nonexistent/spans.jsonl"], "spans.jsonl"),
    (["watch", "udp://127.0.0.1:1", "--count", "1"], "udp://127.0.0.1:1"),
])
def test_bad_telemetry_flags_are_one_line(args, field):
    r = edgespec(*args, timeout=60)
    assert r.returncode == 1 and field in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_busy_metrics_port_is_one_line():
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = edgespec("target", "--model", "tiny", "--listen", "127.0.0.1:0", "--metrics-listen", f"127.0.0.1:{port}",
                     timeout=60)
    assert r.returncode == 1 and "metrics_listen: cannot serve on" in r.stderr and "Traceback" not in r.stderr


HEAVY = ("torch", "transformers")
_IMPORTED_AFTER = ("import sys\nfrom edgespec.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n"
                   "    pass\nprint('HEAVY=' + ','.join(m for m in {heavy!r} if m in sys.modules))")


def _heavy_modules_after(*args: str) -> list[str]:
    """Which of HEAVY a fresh interpreter has imported after running `edgespec ARGS`."""
    out = subprocess.run([sys.executable, "-c", _IMPORTED_AFTER.format(heavy=HEAVY), *args], capture_output=True,
                         text=True, timeout=120, stdin=subprocess.DEVNULL)
    line = next(line for line in out.stdout.splitlines() if line.startswith("HEAVY="))
    return [name for name in line.removeprefix("HEAVY=").split(",") if name]


@pytest.mark.parametrize("args", [["--help"], ["generate", "--help"]])
def test_help_does_not_import_torch_or_transformers(args):
    assert _heavy_modules_after(*args) == []


def test_generate_does_not_import_torch_or_transformers(servers):
    _, draft = servers
    assert _heavy_modules_after("generate", "--server", draft, "--prompt", "hi", "--max-new-tokens", "4") == []


def test_a_server_command_still_gets_its_flags():
    # the lazy parser adds a command's flags only for that command: every command must still parse its own
    from edgespec.cli import COMMANDS, build_parser
    for name in COMMANDS:
        full = build_parser()._subparsers._group_actions[0].choices[name]
        only = build_parser(name)._subparsers._group_actions[0].choices[name]
        assert [a.dest for a in only._actions] == [a.dest for a in full._actions], name


def test_generate_flags_map_to_sdk_options_and_leave_defaults_to_the_server():
    from edgespec.cli import build_parser
    from edgespec.generate_cli import generate_options
    a = build_parser("generate").parse_args(["generate", "--prompt", "hi", "--k", "3", "--acceptance-param",
                                             "window=3", "--acceptance-param", "entropy_threshold=0.5"])
    assert generate_options(a) == {"k": 3, "proactive": False, "raw": False, "ignore_eos": False,
                                   "acceptance_params": {"window": 3, "entropy_threshold": 0.5}}


def test_acceptance_params_parse_as_their_wire_types():
    from edgespec.generate_cli import acceptance_params
    assert acceptance_params(["dropout_criterion=naive", "dropout_paths=8", "dropout_p=0.25"]) == {
        "dropout_criterion": "naive", "dropout_paths": 8, "dropout_p": 0.25}
    with pytest.raises(ValueError, match="window: expected int"):
        acceptance_params(["window=three"])
    assert acceptance_params(["windw=3"]) == {"windw": "3"}   # unknown: the SDK names it


def test_orchestrator_config_checks_max_sessions_and_shares_the_policy_defaults():
    from edgespec.core.draft_length import PolicyConfig
    from edgespec.orchestrator.config import OrchestratorConfig
    with pytest.raises(ValueError, match="max_sessions"):
        OrchestratorConfig(max_sessions=0)
    assert (OrchestratorConfig().default_k, OrchestratorConfig().default_k_max) == (PolicyConfig().k, PolicyConfig().k_max)


def test_a_port_out_of_range_is_refused_not_wrapped(capsys):
    from edgespec.cli import main
    assert main(["target", "--model", "tiny", "--listen", "127.0.0.1:70001"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "listen" in err and "70001" in err and "0..65535" in err


def test_plaintext_on_a_non_loopback_listener_is_refused_without_insecure(capsys):
    from edgespec.cli import main
    assert main(["target", "--model", "tiny", "--listen", "0.0.0.0:0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--tls-cert" in err and "--insecure" in err


def test_a_bare_metrics_port_binds_loopback_and_exposed_telemetry_is_said(caplog):
    from edgespec.cli import build_parser
    from edgespec.service_cli import telemetry_options
    a = build_parser("draft").parse_args(["draft", "--metrics-listen", "9464"])
    assert telemetry_options(a).metrics_listen == "127.0.0.1:9464" and not caplog.records
    a = build_parser("draft").parse_args(["draft", "--metrics-listen", "0.0.0.0:9464",
                                          "--feed-publish", "tcp://0.0.0.0:5557"])
    telemetry_options(a)
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "metrics on 0.0.0.0:9464" in said and "round feed on tcp://0.0.0.0:5557" in said


def test_tls_and_tokens_from_the_command_line(tmp_path):
    """target with TLS + mTLS + tokens, draft dialling it with its CA, client certificate and token
    (and serving its SDK endpoint with TLS + tokens), `generate` with and without a token."""
    import os

    import trustme
    ca = trustme.CA()
    files = {"ca": ca.cert_pem}
    for name, leaf in (("server", ca.issue_cert("localhost", "127.0.0.1")), ("device", ca.issue_cert("device-7"))):
        files[f"{name}-cert"], files[f"{name}-key"] = leaf.cert_chain_pems[0], leaf.private_key_pem
    paths = {}
    for name, blob in files.items():
        paths[name] = str(tmp_path / f"{name}.pem")
        blob.write_to_path(paths[name])
    token = "cli-token-0123456789abcdef"
    (tmp_path / "tokens").write_text(f"{token} device-7\n")
    serve_tls = ["--tls-cert", paths["server-cert"], "--tls-key", paths["server-key"],
                 "--auth-tokens", str(tmp_path / "tokens")]
    target, target_addr = start_service("target", ["--model", "tiny", *serve_tls, "--tls-client-ca", paths["ca"]],
                                        tmp_path / "target")
    try:
        draft, draft_addr = start_service("draft", [
            "--model", "tiny", "--target", target_addr, *serve_tls, "--tls-ca", paths["ca"],
            "--tls-client-cert", paths["device-cert"], "--tls-client-key", paths["device-key"],
            "--token-file", str(tmp_path / "tokens")], tmp_path / "draft")
        try:
            args = ("generate", "--server", draft_addr, "--prompt", "hi", "--max-new-tokens", "4", "--json",
                    "--tls-ca", paths["ca"])
            r = subprocess.run([sys.executable, "-m", "edgespec", *args], capture_output=True, text=True,
                               timeout=120, env={**os.environ, "EDGESPEC_TOKEN": token})
            assert r.returncode == 0, r.stderr
            assert len(json.loads(r.stdout)["token_ids"]) == 4
            r = edgespec(*args)                                        # no token
            assert r.returncode == 1 and r.stderr.count("\n") == 1 and "UNAUTHENTICATED" in r.stderr
            assert token not in r.stderr
        finally:
            stop_service(draft)
    finally:
        stop_service(target)


def test_engine_flags_map_to_each_roles_engine_config():
    from edgespec.cli import build_parser
    from edgespec.models.engine_config import DRAFT_GATHER_SHARE, EngineConfig
    from edgespec.service_cli import draft_config, target_config
    target = target_config(build_parser("target").parse_args(["target", "--max-batch-sessions", "8"]))
    assert target.engine == EngineConfig(max_batch_sessions=8)          # the target's defaults are EngineConfig's
    plain = draft_config(build_parser("draft").parse_args(["draft", "--kv-cache-tokens", "4096"]))
    assert plain.engine is None                                          # a private context per session
    batching = draft_config(build_parser("draft").parse_args(["draft", "--batch", "--kv-cache-tokens", "4096"]))
    assert batching.engine == EngineConfig(kv_cache_tokens=4096, gather_share=DRAFT_GATHER_SHARE)
    told = draft_config(build_parser("draft").parse_args(["draft", "--batch", "--gather-share", "0.2"]))
    assert told.engine.gather_share == 0.2
