"""Mutual TLS from the PEM files of the work dirs (wire-contract.md, "TLS, mutual").

Certificates come from `golem_task_api.ssl.generate_certificates`. Only a
client presenting the server's expected client certificate is served; an
incomplete set of files is an error at start, never plaintext; no files at
all is plaintext.
"""

import shutil
from pathlib import Path

import grpc
import pytest

from golem_task_api import errors
from golem_task_api import ssl as tls
from golem_task_api.client import LocalProcessService, ProviderAppClient, RequestorAppClient
from golem_task_api.client.channel import make_channel, wait_for_health
from golem_task_api.dirutils import ProviderDir
from golem_task_api.proto import golem_task_api_pb2 as pb
from golem_task_api.proto import golem_task_api_pb2_grpc as pb_grpc
from golem_task_api.testutils import InlineTaskApiService
from tests.framework.conftest import OK, status_of_call
from tests.framework.echo_app import BENCHMARK_SCORE, EchoProvider, EchoRequestor
from tests.waiting import BOUND, bounded

SERVER_FILES = [tls.SERVER_KEY_FILE_NAME, tls.SERVER_CERT_FILE_NAME, tls.CLIENT_CERT_FILE_NAME]
CLIENT_FILES = [tls.CLIENT_KEY_FILE_NAME, tls.CLIENT_CERT_FILE_NAME]


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    dirs = {name: tmp_path / name for name in ("server", "client", "server2", "client2")}
    tls.generate_certificates(dirs["server"], dirs["client"])
    tls.generate_certificates(dirs["server2"], dirs["client2"])  # another, unrelated pair
    return dirs


def test_generated_files(certs: dict[str, Path]) -> None:
    assert sorted(p.name for p in certs["server"].iterdir()) == sorted(SERVER_FILES)
    assert sorted(p.name for p in certs["client"].iterdir()) == sorted(CLIENT_FILES)
    assert (certs["server"] / tls.CLIENT_CERT_FILE_NAME).read_bytes() == (
        certs["client"] / tls.CLIENT_CERT_FILE_NAME
    ).read_bytes()
    server = tls.create_server_ssl_context(certs["server"])
    client = tls.create_client_ssl_context(certs["client"], certs["server"])
    assert isinstance(server, tls.ServerTls) and isinstance(client, tls.ClientTls)
    assert client.server_cert == server.cert and server.client_cert == client.cert
    assert client.server_name == "golem-task-api"
    # keys never end up in logs through a repr
    assert b"PRIVATE KEY" in server.key and b"PRIVATE KEY" in client.key
    assert "PRIVATE KEY" not in repr(server) and "PRIVATE KEY" not in repr(client)


async def rpc_status(channel) -> grpc.StatusCode:
    stub = pb_grpc.RequestorAppStub(channel)
    code, _details = await status_of_call(stub.RunBenchmark(pb.RunBenchmarkRequest(), timeout=5))
    return code


async def test_right_client_is_served(servers, certs) -> None:
    server = await servers.requestor(certs["server"], EchoRequestor())
    client_tls = tls.create_client_ssl_context(certs["client"], certs["server"])
    channel = make_channel("127.0.0.1", server.port, client_tls)
    async with channel:
        await wait_for_health(channel, BOUND)
        assert await rpc_status(channel) == OK


async def test_our_clients_over_tls(certs, tmp_path) -> None:
    client_tls = tls.create_client_ssl_context(certs["client"], certs["server"])
    service = InlineTaskApiService(certs["server"], requestor_handler=EchoRequestor())
    client = await RequestorAppClient.create(service, port=0, ssl_context=client_tls)
    try:
        assert await client.run_benchmark() == BENCHMARK_SCORE
    finally:
        await bounded(client.shutdown(), "shutdown")

    provider_dir = ProviderDir(tmp_path / "provider").task_dir("t1")
    provider_dir.parent.mkdir()
    provider_dir.prepare()
    for name in SERVER_FILES:
        shutil.copy(certs["server"] / name, provider_dir / name)
    service = InlineTaskApiService(provider_dir, provider_handler=EchoProvider())
    provider = await ProviderAppClient.create(service, client_tls, port=0)
    assert await provider.compute("t1", "s1", {}) == Path("s1/result.txt")


async def test_app_process_over_tls(certs, processes) -> None:
    """The command line picks the TLS files up from the work dir."""
    client_tls = tls.create_client_ssl_context(certs["client"], certs["server"])
    service = processes(certs["server"])
    client = await RequestorAppClient.create(service, port=0, ssl_context=client_tls)
    try:
        assert await client.run_benchmark() == BENCHMARK_SCORE
        assert "(mutual TLS)" in service.output_tail()
    finally:
        await bounded(client.shutdown(), "shutdown")
    assert service.returncode == 0


@pytest.mark.parametrize("who", ["plaintext", "no certificate", "wrong certificate"])
async def test_other_clients_are_refused(servers, certs, who: str) -> None:
    server = await servers.requestor(certs["server"], EchoRequestor())
    target = f"127.0.0.1:{server.port}"
    server_cert = (certs["server"] / tls.SERVER_CERT_FILE_NAME).read_bytes()
    if who == "plaintext":
        channel = grpc.aio.insecure_channel(target)
    elif who == "no certificate":
        channel = grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(server_cert))
    else:
        wrong = tls.create_client_ssl_context(certs["client2"], certs["server"])
        channel = make_channel("127.0.0.1", server.port, wrong)
    async with channel:
        assert await rpc_status(channel) == grpc.StatusCode.UNAVAILABLE
        with pytest.raises((errors.DeadlineExceeded, errors.Unavailable)):
            await wait_for_health(channel, 0.5)
    # and the right client is still served
    right = tls.create_client_ssl_context(certs["client"], certs["server"])
    async with make_channel("127.0.0.1", server.port, right) as channel:
        assert await rpc_status(channel) == OK
    assert server.servicer._handler.calls == [("run_benchmark", str(certs["server"]))]


async def test_client_refuses_a_server_it_does_not_trust(servers, certs) -> None:
    server = await servers.requestor(certs["server"], EchoRequestor())
    # trusts server2's certificate, not server's
    client_tls = tls.create_client_ssl_context(certs["client"], certs["server2"])
    async with make_channel("127.0.0.1", server.port, client_tls) as channel:
        assert await rpc_status(channel) == grpc.StatusCode.UNAVAILABLE


async def test_our_client_with_a_refused_certificate_fails_and_stops_the_app(certs) -> None:
    wrong = tls.create_client_ssl_context(certs["client2"], certs["server"])
    service = InlineTaskApiService(certs["server"], requestor_handler=EchoRequestor())
    with pytest.raises((errors.DeadlineExceeded, errors.Unavailable)):
        await RequestorAppClient.create(service, port=0, ssl_context=wrong, connection_timeout=0.5)
    await bounded(service.wait_until_shutdown_complete(), "the app's stop")


@pytest.mark.parametrize("case", ["untrusted server", "plaintext server"])
async def test_a_failed_handshake_is_an_error_at_once(certs, tmp_path, case: str) -> None:
    """Not a wait for the whole connection timeout (15 s by default): the
    certificates will not change. Unavailable, never DeadlineExceeded."""
    if case == "untrusted server":
        server_dir, client_tls = certs["server"], tls.create_client_ssl_context(
            certs["client"], certs["server2"]
        )
    else:
        server_dir = tmp_path / "plain"
        server_dir.mkdir()
        client_tls = tls.create_client_ssl_context(certs["client"], certs["server"])
    service = InlineTaskApiService(server_dir, requestor_handler=EchoRequestor())
    with pytest.raises(errors.Unavailable, match="TLS handshake with the app failed"):
        await bounded(
            RequestorAppClient.create(
                service, port=0, ssl_context=client_tls, connection_timeout=10 * BOUND
            ),
            "a client refusing the server",
        )
    await bounded(service.wait_until_shutdown_complete(), "the app's stop")


@pytest.mark.parametrize("missing", SERVER_FILES)
async def test_incomplete_server_files_are_an_error(servers, certs, missing: str) -> None:
    (certs["server"] / missing).unlink()
    with pytest.raises(tls.TlsConfigError, match=missing):
        await servers.requestor(certs["server"], EchoRequestor())
    with pytest.raises(tls.TlsConfigError, match="incomplete"):
        await servers.provider(certs["server"], EchoProvider())


@pytest.mark.parametrize(
    ("side", "missing"),
    [("client", tls.CLIENT_KEY_FILE_NAME), ("client", tls.CLIENT_CERT_FILE_NAME),
     ("server", tls.SERVER_CERT_FILE_NAME)],
)
def test_incomplete_client_files_are_an_error(certs, side: str, missing: str) -> None:
    (certs[side] / missing).unlink()
    with pytest.raises(tls.TlsConfigError, match=missing):
        tls.create_client_ssl_context(certs["client"], certs["server"])


async def test_incomplete_files_stop_the_app_process(certs, processes) -> None:
    """Through the command line: exit code 1 and a message, never a plaintext server."""
    (certs["server"] / tls.CLIENT_CERT_FILE_NAME).unlink()
    service: LocalProcessService = processes(certs["server"], start_timeout=BOUND)
    with pytest.raises(errors.Unavailable, match="before it served") as info:
        await service.start("requestor 0", 0)
    assert "incomplete TLS setup" in str(info.value)
    assert service.returncode not in (0, None)


# Found by this suite (it was 'cannot listen ... Failed to bind'); fixed in 5ff6b78.
async def test_a_garbage_key_is_reported_as_a_tls_error(servers, certs) -> None:
    (certs["server"] / tls.SERVER_KEY_FILE_NAME).write_text("not a key")
    with pytest.raises(tls.TlsConfigError, match=tls.SERVER_KEY_FILE_NAME):
        await servers.requestor(certs["server"], EchoRequestor())
    # a client's broken pair is named too
    (certs["client"] / tls.CLIENT_CERT_FILE_NAME).write_text("not a certificate")
    with pytest.raises(tls.TlsConfigError, match=tls.CLIENT_CERT_FILE_NAME):
        tls.create_client_ssl_context(certs["client"], certs["server"])


async def test_no_files_is_plaintext(servers, tmp_path, certs) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    server = await servers.requestor(plain, EchoRequestor())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        assert await rpc_status(channel) == OK
    # a TLS client cannot talk to a plaintext server
    client_tls = tls.create_client_ssl_context(certs["client"], certs["server"])
    async with make_channel("127.0.0.1", server.port, client_tls) as channel:
        assert await rpc_status(channel) == grpc.StatusCode.UNAVAILABLE
