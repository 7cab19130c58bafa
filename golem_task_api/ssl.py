"""Mutual TLS between a node and an app, from PEM files in known places.

The server uses TLS when its work dir holds its key, its certificate and the
client's certificate; it then *requires* that client certificate. The client
uses its own key and certificate and the server's certificate. With none of
the files, both sides speak plaintext (as Golem nodes do); with only some of
them, it is an error, never a silent fall-back to plaintext.

The functions keep the original names, but return gRPC credentials holders
(grpcio cannot use an `ssl.SSLContext`).
"""

import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

logger = logging.getLogger(__name__)

SERVER_KEY_FILE_NAME = "task_api_server_key.pem"
SERVER_CERT_FILE_NAME = "task_api_server_cert.pem"
CLIENT_KEY_FILE_NAME = "task_api_client_key.pem"
CLIENT_CERT_FILE_NAME = "task_api_client_cert.pem"


class TlsConfigError(Exception):
    """Some but not all TLS files are present, or they cannot be read."""


@dataclass(frozen=True)
class ServerTls:
    key: bytes = field(repr=False)
    cert: bytes
    client_cert: bytes

    def credentials(self) -> Any:
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)],
            root_certificates=self.client_cert,
            require_client_auth=True,
        )


@dataclass(frozen=True)
class ClientTls:
    key: bytes = field(repr=False)
    cert: bytes
    server_cert: bytes
    # The name in the server's certificate. Apps are reached by IP address
    # (a container's bridge IP, loopback), so the certificate is checked
    # against its own name rather than the address dialled.
    server_name: str | None = None

    def credentials(self) -> Any:
        return grpc.ssl_channel_credentials(
            root_certificates=self.server_cert,
            private_key=self.key,
            certificate_chain=self.cert,
        )

    def channel_options(self) -> list[tuple[str, str]]:
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]


def _read_all(paths: list[Path]) -> list[bytes] | None:
    present = [p for p in paths if p.exists()]
    if not present:
        return None
    if len(present) != len(paths):
        missing = ", ".join(str(p) for p in paths if not p.exists())
        raise TlsConfigError(
            f"incomplete TLS setup: missing {missing} (remove all TLS files for plaintext)"
        )
    try:
        return [p.read_bytes() for p in paths]
    except OSError as exc:
        raise TlsConfigError(f"cannot read TLS file: {exc}") from exc


def _check_pair(cert: Path, key: Path, peer_cert: Path, *, server_side: bool) -> None:
    """Fail here, with the file named, rather than deep in gRPC's TLS setup."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(f"{cert.name} and {key.name} are not a usable pair: {exc}") from exc
    try:
        context.load_verify_locations(cafile=peer_cert)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(f"{peer_cert} is not a usable certificate: {exc}") from exc


def certificate_name(cert_path: Path) -> str | None:
    """The first DNS name (else the common name) of a PEM certificate."""
    try:
        # The only stdlib parser of certificates; private but long-standing.
        decoded = ssl._ssl._test_decode_cert(str(cert_path))  # type: ignore[attr-defined]
    except (AttributeError, ssl.SSLError, OSError):
        return None
    for kind, value in decoded.get("subjectAltName", ()):
        if kind == "DNS":
            return str(value)
    for rdn in decoded.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def create_server_ssl_context(
    directory: Path,
    server_key_file_name: str = SERVER_KEY_FILE_NAME,
    server_cert_file_name: str = SERVER_CERT_FILE_NAME,
    client_cert_file_name: str = CLIENT_CERT_FILE_NAME,
) -> ServerTls | None:
    files = _read_all(
        [
            directory / server_key_file_name,
            directory / server_cert_file_name,
            directory / client_cert_file_name,
        ]
    )
    if files is None:
        return None
    _check_pair(directory / server_cert_file_name, directory / server_key_file_name,
                directory / client_cert_file_name, server_side=True)
    key, cert, client_cert = files
    return ServerTls(key=key, cert=cert, client_cert=client_cert)


def create_client_ssl_context(
    directory: Path,
    server_cert_directory: Path,
    client_key_file_name: str = CLIENT_KEY_FILE_NAME,
    client_cert_file_name: str = CLIENT_CERT_FILE_NAME,
    server_cert_file_name: str = SERVER_CERT_FILE_NAME,
) -> ClientTls | None:
    server_cert_path = server_cert_directory / server_cert_file_name
    files = _read_all(
        [directory / client_key_file_name, directory / client_cert_file_name, server_cert_path]
    )
    if files is None:
        return None
    _check_pair(directory / client_cert_file_name, directory / client_key_file_name,
                server_cert_path, server_side=False)
    key, cert, server_cert = files
    return ClientTls(
        key=key, cert=cert, server_cert=server_cert, server_name=certificate_name(server_cert_path)
    )


def generate_certificates(
    server_dir: Path, client_dir: Path, server_name: str = "golem-task-api", days: int = 3650
) -> None:
    """Write a self-signed server and client key pair (needs the openssl CLI).

    The server dir gets the server key and certificate and a copy of the
    client certificate; the client dir gets the client key and certificate.
    """
    import shutil  # noqa: PLC0415 - only here: app start-up does not need them
    import subprocess  # noqa: PLC0415
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TlsConfigError("generating certificates needs the openssl command")
    for directory, stem, name in (
        (server_dir, "server", server_name),
        (client_dir, "client", "golem-task-api-client"),
    ):
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-days", str(days), "-subj", f"/CN={name}",
                "-addext", f"subjectAltName=DNS:{name},DNS:localhost,IP:127.0.0.1",
                "-keyout", str(directory / f"task_api_{stem}_key.pem"),
                "-out", str(directory / f"task_api_{stem}_cert.pem"),
            ],
            check=True,
            capture_output=True,
        )
    shutil.copy(client_dir / CLIENT_CERT_FILE_NAME, server_dir / CLIENT_CERT_FILE_NAME)


__all__ = [
    "CLIENT_CERT_FILE_NAME",
    "CLIENT_KEY_FILE_NAME",
    "SERVER_CERT_FILE_NAME",
    "SERVER_KEY_FILE_NAME",
    "ClientTls",
    "ServerTls",
    "TlsConfigError",
    "certificate_name",
    "create_client_ssl_context",
    "create_server_ssl_context",
    "generate_certificates",
]
