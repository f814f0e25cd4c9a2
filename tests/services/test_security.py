"""Secure by default, against real servers (tiny preset): TLS and mTLS on the target and on the
draft's SDK endpoint, with certificates made at run time by trustme (no committed keys); a
server-name override through a proxy; token auth that answers UNAUTHENTICATED / PERMISSION_DENIED
before any session exists, keeps health open, rotates without a restart and never logs a token;
plaintext refused on a non-loopback listener unless `insecure`, reflection off there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgespec.rpc import auth
from edgespec.rpc.security import ClientSecurity, ServerTls
from edgespec.rpc.server import ServerOptions
from edgespec.v1 import common_pb2, target_pb2, target_pb2_grpc
from edgespec_client import AsyncClient, EdgespecError, UnavailableError

T = 20.0
PROMPT = [76, 73, 80, 80]
TOKEN, OTHER, DRAFT_ONLY = "t0k3n-alice-0123456789abcdef", "t0k3n-bob-0123456789abcdef", "t0k3n-carol-0123456789abc"
BASE = dict(listen="127.0.0.1:0", grace_s=0.5, keepalive_time_s=1.0, keepalive_timeout_s=1.0)


@dataclasses.dataclass
class Pki:
    ca: str
    server_cert: str
    server_key: str
    named_cert: str          # a certificate for target.edgespec.test only (not 127.0.0.1)
    named_key: str
    client_cert: str
    client_key: str


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    named = ca.issue_cert("target.edgespec.test")
    client = ca.issue_cert("device-7.edgespec.test")
    paths = {}
    for name, blob in [("ca", ca.cert_pem), ("server_cert", server.cert_chain_pems[0]),
                       ("server_key", server.private_key_pem), ("named_cert", named.cert_chain_pems[0]),
                       ("named_key", named.private_key_pem), ("client_cert", client.cert_chain_pems[0]),
                       ("client_key", client.private_key_pem)]:
        blob.write_to_path(str(d / f"{name}.pem"))
        paths[name] = str(d / f"{name}.pem")
    return Pki(**paths)


def _tokens_file(tmp_path, text: str) -> str:
    path = tmp_path / "tokens"
    path.write_text(text)
    return str(path)


def _raw_session(channel, metadata=None):
    call = target_pb2_grpc.VerifierStub(channel).Session(timeout=T, metadata=metadata)
    return call


async def _open(call) -> str:
    await call.write(target_pb2.VerifierRequest(open=common_pb2.SessionOpen(
        prompt_token_ids=PROMPT, acceptance="exact", max_new_tokens=8)))
    return (await call.read()).opened.session_id


# ---------------------------------------------------------------------------------------------
# TLS, mTLS

async def test_tls_end_to_end_and_plaintext_clients_are_refused(stack_factory, pki):
    tls = ServerOptions(**BASE, tls=ServerTls(pki.server_cert, pki.server_key))
    stack = await stack_factory(target_overrides={"server": tls}, draft_overrides={"server": tls},
                                orchestrator_overrides={"server": tls, "upstream": ClientSecurity(ca=pki.ca)})
    async with AsyncClient(stack.draft_address, timeout=T, tls_ca=pki.ca) as client:
        result = await client.generate(prompt_token_ids=PROMPT, max_new_tokens=6)
        assert len(result.token_ids) == 6
    async with AsyncClient(stack.draft_address, timeout=5.0, max_retries=0) as plaintext:
        with pytest.raises(UnavailableError):
            await plaintext.generate(prompt_token_ids=PROMPT, max_new_tokens=6)
    assert len(stack.target_servicer.sessions) == 0


async def test_mtls_requires_a_client_certificate_signed_by_the_ca(stack_factory, pki):
    mtls = ServerOptions(**BASE, tls=ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca))
    stack = await stack_factory(target_overrides={"server": mtls}, orchestrator_overrides={
        "upstream": ClientSecurity(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)})
    async with AsyncClient(stack.draft_address, timeout=T) as client:
        assert len((await client.generate(prompt_token_ids=PROMPT, max_new_tokens=4)).token_ids) == 4
    credentials = grpc.ssl_channel_credentials(open(pki.ca, "rb").read())          # no client certificate
    async with grpc.aio.secure_channel(stack.target_address, credentials) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await target_pb2_grpc.VerifierStub(channel).Info(common_pb2.InfoRequest(), timeout=5.0)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(stack.target_servicer.sessions) == 0


async def test_a_server_name_override_reaches_tls_through_a_proxy(stack_factory, pki):
    from edgespec.net.proxy import DelayProxy, parse_address
    named = ServerOptions(**BASE, tls=ServerTls(pki.named_cert, pki.named_key))
    stack = await stack_factory(draft_overrides={"server": named})
    async with DelayProxy(upstream=parse_address(stack.draft_address)) as proxy:
        async with AsyncClient(proxy.address, timeout=5.0, max_retries=0, tls_ca=pki.ca) as wrong_name:
            with pytest.raises(UnavailableError):      # 127.0.0.1 is not in the certificate
                await wrong_name.generate(prompt_token_ids=PROMPT, max_new_tokens=4)
        async with AsyncClient(proxy.address, timeout=T, tls_ca=pki.ca,
                               server_name="target.edgespec.test") as client:
            assert len((await client.generate(prompt_token_ids=PROMPT, max_new_tokens=4)).token_ids) == 4


# ---------------------------------------------------------------------------------------------
# tokens

@pytest.fixture
async def token_stack(stack_factory, pki, tmp_path):
    tokens = _tokens_file(tmp_path, f"# name, then the services it may call\n{TOKEN} alice\n"
                                    f"{DRAFT_ONLY} carol Drafter,Orchestrator\n")
    secured = ServerOptions(**BASE, tls=ServerTls(pki.server_cert, pki.server_key), auth_tokens=tokens)
    stack = await stack_factory(target_overrides={"server": secured}, draft_overrides={"server": secured},
                                orchestrator_overrides={"upstream": ClientSecurity(ca=pki.ca, token=TOKEN)})
    return stack, tokens


def _bearer(token: str) -> tuple:
    return (("authorization", f"Bearer {token}"),)


@pytest.mark.parametrize("case, code", [("no token", grpc.StatusCode.UNAUTHENTICATED),
                                        ("unknown token", grpc.StatusCode.UNAUTHENTICATED),
                                        ("not a bearer", grpc.StatusCode.UNAUTHENTICATED),
                                        ("token of other services", grpc.StatusCode.PERMISSION_DENIED)])
async def test_calls_without_a_good_token_are_refused_before_any_session(token_stack, pki, caplog, case, code):
    stack, _ = token_stack
    metadata = {"no token": None, "unknown token": _bearer(OTHER), "not a bearer": (("authorization", TOKEN),),
                "token of other services": _bearer(DRAFT_ONLY)}[case]
    caplog.set_level(logging.DEBUG)
    credentials = grpc.ssl_channel_credentials(open(pki.ca, "rb").read())
    async with grpc.aio.secure_channel(stack.target_address, credentials) as channel:
        call = _raw_session(channel, metadata)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _open(call)
        assert info.value.code() == code, info.value.details()
        assert "authorization" in info.value.details()
        assert len(stack.target_servicer.sessions) == 0
        health = health_pb2_grpc.HealthStub(channel)                 # probes need no token
        assert (await health.Check(health_pb2.HealthCheckRequest(), timeout=T)).status == \
            health_pb2.HealthCheckResponse.SERVING
        call = _raw_session(channel, _bearer(TOKEN))
        assert await _open(call)
        call.cancel()
    async with AsyncClient(stack.draft_address, timeout=T, tls_ca=pki.ca, token=TOKEN) as client:
        assert len((await client.generate(prompt_token_ids=PROMPT, max_new_tokens=4)).token_ids) == 4
    for token in (TOKEN, OTHER, DRAFT_ONLY):
        assert token not in caplog.text


async def test_the_sdk_token_and_a_missing_one(token_stack, pki):
    stack, _ = token_stack
    async with AsyncClient(stack.draft_address, timeout=T, tls_ca=pki.ca, max_retries=0) as anonymous:
        with pytest.raises(EdgespecError) as info:
            await anonymous.generate(prompt_token_ids=PROMPT, max_new_tokens=4)
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    async with AsyncClient(stack.draft_address, timeout=T, tls_ca=pki.ca, token=DRAFT_ONLY) as carol:
        assert len((await carol.generate(prompt_token_ids=PROMPT, max_new_tokens=4)).token_ids) == 4


async def test_tokens_rotate_without_a_restart(token_stack, pki, monkeypatch):
    stack, tokens = token_stack
    monkeypatch.setattr(auth, "RELOAD_EVERY_S", 0.0)
    new = "t0k3n-alice-rotated-0123456789"
    async with AsyncClient(stack.draft_address, timeout=T, tls_ca=pki.ca, token=new, max_retries=0) as client:
        with pytest.raises(EdgespecError) as info:
            await client.generate(prompt_token_ids=PROMPT, max_new_tokens=4)
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
        await asyncio.sleep(0.02)                                     # a new modification time
        with open(tokens, "w") as f:
            f.write(f"{new} alice\n{TOKEN} draft-device\n")
        assert len((await client.generate(prompt_token_ids=PROMPT, max_new_tokens=4)).token_ids) == 4


async def test_a_tokens_name_is_its_callers_identity_for_session_limits(stack_factory, pki, tmp_path):
    tokens = _tokens_file(tmp_path, f"{TOKEN} alice\n{OTHER} bob\n")
    secured = ServerOptions(**BASE, tls=ServerTls(pki.server_cert, pki.server_key), auth_tokens=tokens)
    stack = await stack_factory(target_overrides={"server": secured, "max_sessions": 4})   # 2 per caller
    credentials = grpc.ssl_channel_credentials(open(pki.ca, "rb").read())
    async with grpc.aio.secure_channel(stack.target_address, credentials) as channel:
        alice = [_raw_session(channel, _bearer(TOKEN)) for _ in range(3)]
        for call in alice[:2]:
            assert await _open(call)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _open(alice[2])
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "per caller" in info.value.details()
        bob = _raw_session(channel, _bearer(OTHER))
        assert await _open(bob)                                       # another caller still gets in
        for call in (*alice[:2], bob):
            call.cancel()


# ---------------------------------------------------------------------------------------------
# safe defaults

def test_plaintext_on_a_non_loopback_listener_needs_insecure(pki):
    with pytest.raises(ValueError, match="not a loopback address.*--tls-cert.*--insecure"):
        ServerOptions(listen="0.0.0.0:50051")
    assert ServerOptions(listen="0.0.0.0:50051", insecure=True).insecure
    assert ServerOptions(listen="0.0.0.0:50051", tls=ServerTls(pki.server_cert, pki.server_key)).tls


def test_reflection_is_off_on_a_non_loopback_listener_unless_asked():
    assert ServerOptions(listen="127.0.0.1:0").serves_reflection
    assert not ServerOptions(listen="0.0.0.0:0", insecure=True).serves_reflection
    assert ServerOptions(listen="0.0.0.0:0", insecure=True, reflection=True).serves_reflection
    assert not ServerOptions(listen="127.0.0.1:0", reflection=False).serves_reflection


def test_token_files_are_checked_and_never_echo_a_token():
    with pytest.raises(ValueError, match="line 1: a token must be at least 16") as info:
        auth.parse_tokens("short-secret alice\n")
    assert "short-secret" not in str(info.value)
    with pytest.raises(ValueError, match="line 2: the name 'alice' is used twice"):
        auth.parse_tokens(f"{TOKEN} alice\n{OTHER} alice\n")
    assert "t0k3n" not in repr(ClientSecurity(ca="ca.pem", token=TOKEN))


def test_a_token_file_gives_its_first_token(tmp_path):
    from edgespec.rpc.security import read_token
    path = tmp_path / "token"
    path.write_text(f"# the device's token\n{TOKEN} alice\n{OTHER}\n")
    assert read_token(str(path)) == TOKEN
    path.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="holds no token"):
        read_token(str(path))


async def test_the_healthcheck_probes_a_tls_server_without_a_token(token_stack, pki):
    from edgespec.healthcheck import check
    stack, _ = token_stack
    assert await asyncio.to_thread(check, stack.target_address, "", 5.0, pki.ca) is None
    assert await asyncio.to_thread(check, stack.target_address, "", 2.0) is not None   # plaintext: refused


async def test_a_client_certificates_name_is_its_callers_identity(stack_factory, pki):
    mtls = ServerOptions(**BASE, tls=ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca))
    stack = await stack_factory(target_overrides={"server": mtls, "max_sessions": 4}, orchestrator_overrides={
        "upstream": ClientSecurity(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)})   # 2 per caller
    read = lambda path: open(path, "rb").read()  # noqa: E731
    credentials = grpc.ssl_channel_credentials(read(pki.ca), read(pki.client_key), read(pki.client_cert))
    async with grpc.aio.secure_channel(stack.target_address, credentials) as channel:
        calls = [_raw_session(channel) for _ in range(3)]
        for call in calls[:2]:
            assert await _open(call)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _open(calls[2])
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "per caller" in info.value.details()
        for call in calls[:2]:
            call.cancel()


async def test_refusals_are_counted_in_the_errors_metric_and_no_token_reaches_it(token_stack, pki):
    from prometheus_client import generate_latest
    stack, _ = token_stack
    registry = stack.target_servicer.telemetry.metrics.registry
    credentials = grpc.ssl_channel_credentials(open(pki.ca, "rb").read())
    async with grpc.aio.secure_channel(stack.target_address, credentials) as channel:
        for metadata in (None, _bearer(OTHER), _bearer(DRAFT_ONLY)):
            with pytest.raises(grpc.aio.AioRpcError):
                await _open(_raw_session(channel, metadata))
    text = generate_latest(registry).decode()
    method = "/edgespec.v1.Verifier/Session"
    assert f'edgespec_errors_total{{code="UNAUTHENTICATED",method="{method}"}} 2.0' in text
    assert f'edgespec_errors_total{{code="PERMISSION_DENIED",method="{method}"}} 1.0' in text
    assert not any(token in text for token in (TOKEN, OTHER, DRAFT_ONLY))
