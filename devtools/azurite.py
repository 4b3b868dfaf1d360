"""Start and stop Azurite's Table service (npm ``azurite``) on a free loopback port: plain
http with the account key (the default), or https with bearer-token checks (``https=True``);
and its Queue service (:class:`AzuriteQueues`, for the fan-out)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parents[1]
# The well-known Azurite development account (public, documented by Microsoft; not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files in *directory*."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=5))
                   .not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName(
                       [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Azurite:
    """``with Azurite() as azurite: azurite.connection_string``

    ``Azurite(https=True)``: TLS with a fresh self-signed certificate (:attr:`certificate`, for
    ``connection_verify``) and ``--oauth basic``, so bearer tokens (managed identity) are
    checked for their audience, issuer and lifetime.
    """

    port: int = 0
    startup_timeout: float = 30.0
    process: subprocess.Popen[bytes] | None = None
    https: bool = False
    certificate: Path | None = None
    _tls_dir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def table_endpoint(self) -> str:
        scheme = "https" if self.https else "http"
        return f"{scheme}://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"TableEndpoint={self.table_endpoint};")

    def start(self) -> Azurite:
        self.port = self.port or free_port()
        self.process = launch("azurite-table", "--tableHost", "127.0.0.1", "--tablePort",
                              str(self.port), *self._tls_options())
        self._wait_until_listening()
        return self

    def _tls_options(self) -> list[str]:
        if not self.https:
            return []
        self._tls_dir = tempfile.TemporaryDirectory(prefix="azurite-tls-")
        self.certificate, key = self_signed_certificate(Path(self._tls_dir.name))
        return ["--cert", str(self.certificate), "--key", str(key), "--oauth", "basic"]

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"Azurite exited at start: {error[-1000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Azurite did not listen on port {self.port} within "
                           f"{self.startup_timeout} s")

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
        if self._tls_dir is not None:
            self._tls_dir.cleanup()
            self._tls_dir = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


@dataclass
class AzuriteQueues:
    """``with AzuriteQueues() as queues: queues.connection_string(table_endpoint)``: Azurite's
    Queue service (``azurite-queue``, in memory, ``--skipApiVersionCheck`` so the current SDK
    is accepted) on a free loopback port."""

    port: int = 0
    startup_timeout: float = 30.0
    process: subprocess.Popen[bytes] | None = None

    @property
    def queue_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def connection_string(self, table_endpoint: str | None = None) -> str:
        """The account's connection string with the queue endpoint (and *table_endpoint*)."""
        tables = f"TableEndpoint={table_endpoint};" if table_endpoint else ""
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"QueueEndpoint={self.queue_endpoint};{tables}")

    def start(self) -> AzuriteQueues:
        self.port = self.port or free_port()
        self.process = launch("azurite-queue", "--queueHost", "127.0.0.1", "--queuePort",
                              str(self.port), "--skipApiVersionCheck")
        waiter = Azurite(port=self.port, startup_timeout=self.startup_timeout,
                         process=self.process)
        try:
            waiter._wait_until_listening()
        finally:
            waiter.process = None  # the waiter only borrowed the process
        return self

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def __enter__(self) -> AzuriteQueues:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def launch(service: str, *options: str) -> subprocess.Popen[bytes]:
    """Start one Azurite service (``azurite-table``, ``azurite-queue``) from the repository's
    node_modules (or PATH), in memory and quiet."""
    binary = REPO / "node_modules" / ".bin" / service
    command = str(binary) if binary.exists() else shutil.which(service)
    if command is None:
        raise RuntimeError(f"{service} not found: run `make setup` (npm ci)")
    return subprocess.Popen(
        [command, *options, "--inMemoryPersistence", "--disableTelemetry", "--silent"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate an Azurite service started by :func:`launch` (killed after 10 s)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
