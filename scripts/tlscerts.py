"""A throw-away certificate authority and a server certificate for loopback, made with ``openssl``.

For the tests' TLS-only PostgreSQL (``pgcluster.Cluster(tls=...)``): clients connect with
``sslmode=verify-full sslrootcert=<ca.crt>``, so the server certificate must name the host they dial.
It names ``127.0.0.1`` and ``localhost`` (subjectAltName; CN 127.0.0.1). Keys are EC P-256, valid a few
days, written into the caller's (temporary) directory: nothing here is ever meant to be committed.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOSTS = ("127.0.0.1", "localhost")
VALID_DAYS = 7
_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class ServerTls:
    """The files a TLS server and its clients need: the CA certificate (clients), certificate and key."""

    ca_cert: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if not exe:
        raise RuntimeError("openssl is not installed (apt-get install openssl)")
    res = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {res.stderr.strip()[-2000:]}")


def _san(hosts: Sequence[str]) -> str:
    return ",".join(f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts)


def make_server_certificates(directory: Path, hosts: Sequence[str] = DEFAULT_HOSTS) -> ServerTls:
    """Write ``ca.crt``/``ca.key`` and ``server.crt``/``server.key`` (signed by that CA) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-new", *_KEY, "-keyout", "ca.key", "-out", "ca.crt", "-days", str(VALID_DAYS),
             "-subj", "/CN=quant-db-ops test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    _openssl("req", "-new", *_KEY, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={hosts[0]}",
             cwd=directory)
    (directory / "server.ext").write_text(
        f"subjectAltName={_san(hosts)}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n", encoding="utf-8")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-set_serial", str(secrets.randbits(63)), "-days", str(VALID_DAYS), "-extfile", "server.ext",
             "-out", "server.crt", cwd=directory)
    for name in ("ca.key", "server.key"):
        (directory / name).chmod(0o600)
    return ServerTls(directory / "ca.crt", directory / "server.crt", directory / "server.key")


@dataclass(frozen=True)
class ClientTls:
    """A client certificate and key (libpq's ``sslcert`` / ``sslkey``)."""

    cert: Path
    key: Path


def make_client_certificate(tls: ServerTls, user: str) -> ClientTls:
    """A client certificate for role ``user`` (its CN), signed by the CA of ``tls``, beside the CA's files."""
    directory = tls.ca_cert.parent
    ca_key = directory / "ca.key"
    _openssl("req", "-new", *_KEY, "-keyout", f"{user}.key", "-out", f"{user}.csr", "-subj", f"/CN={user}",
             cwd=directory)
    (directory / f"{user}.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        encoding="utf-8")
    _openssl("x509", "-req", "-in", f"{user}.csr", "-CA", str(tls.ca_cert), "-CAkey", str(ca_key),
             "-set_serial", str(secrets.randbits(63)), "-days", str(VALID_DAYS), "-extfile", f"{user}.ext",
             "-out", f"{user}.crt", cwd=directory)
    (directory / f"{user}.key").chmod(0o600)
    return ClientTls(directory / f"{user}.crt", directory / f"{user}.key")
