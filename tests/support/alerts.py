"""Real alert receivers on loopback for the alert tests.

``WebhookReceiver`` is an ``http.server`` in a thread that records every POST and answers with the
statuses it is given (then 200). ``MailReceiver`` is aiosmtpd's SMTP server in a thread, optionally
requiring STARTTLS with a self-signed certificate and a login. Also: running the migration DAG so that
its ``prepare`` task fails (a source path that does not exist), and reading one task's log out of what
``dag.test()`` printed.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import html
import ipaddress
import json
import re
import ssl
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pgcluster import free_port
from support.harness import repoint_root_stream_handlers
from support.migration import load_dag

ALERTS_ENV = "AIRFLOW_CONN_QUANT_ALERTS"


@dataclass
class Post:
    path: str
    content_type: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class WebhookReceiver:
    """Records POSTs; answers with ``statuses`` in turn, then 200."""

    statuses: list[int] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def webhook_receiver(statuses: list[int] | None = None) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(statuses=list(statuses or []))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.posts.append(Post(self.path, self.headers.get("Content-Type", ""), json.loads(raw),
                                       {k.lower(): v for k, v in self.headers.items()}))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads the posts, not the access log."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files), for the STARTTLS receiver."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: Message
    login: str | None  # who logged in, if anyone did
    tls: bool  # the mail came over an encrypted session

    @property
    def text(self) -> str:
        """The body as a reader sees it: the SMTP provider sends HTML only, the report in one ``<pre>`` block."""
        part = self.message.get_body(preferencelist=("plain", "html"))
        assert part is not None, "the mail has no text body"
        body = part.get_content()
        if part.get_content_type() == "text/html":
            body = html.unescape(re.sub(r"<[^>]+>", "", body))
        return body


@dataclass
class MailReceiver:
    port: int
    mails: list[Mail] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (login, accepted)


@contextmanager
def mail_receiver(*, tls: tuple[Path, Path] | None = None,
                  credentials: tuple[str, str] | None = None) -> Iterator[MailReceiver]:
    """aiosmtpd on loopback; with ``tls`` it requires STARTTLS, with ``credentials`` a login (over TLS)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    receiver = MailReceiver(port=free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            auth = session.auth_data
            login = auth.login.decode() if session.authenticated and isinstance(auth, LoginPassword) else None
            message = message_from_bytes(envelope.content, policy=email.policy.default)
            receiver.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message, login,
                                       tls=bool(session.ssl)))
            return "250 Message accepted"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and credentials is not None
              and (auth_data.login.decode(), auth_data.password.decode()) == credentials)
        receiver.logins.append((auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?", ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data)  # a refusal answers 535

    kwargs: dict[str, Any] = {}
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        kwargs.update(tls_context=context, require_starttls=True)
    if credentials:
        kwargs.update(authenticator=authenticate, auth_require_tls=tls is not None, auth_required=True)
    controller = Controller(Handler(), hostname="127.0.0.1", port=receiver.port, **kwargs)
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()


def log_to_this_tests_stdout() -> None:
    """Point the root log handlers at this test's stdout, so task lines and callback lines keep their order
    (the task runner's own lines go to stdout; the stdlib loggers' lines, the callbacks', would not)."""
    repoint_root_stream_handlers(sys.stdout)


def fail_prepare(tmp_path: Path) -> tuple[Any, Path]:
    """Run the migration DAG on a source file that does not exist: ``prepare`` fails, nothing else runs."""
    missing = tmp_path / "no-such-dir" / "spock_local.db"
    log_to_this_tests_stdout()
    dag_run = load_dag().test(run_conf={"dry_run": True, "source_path": str(missing)})
    return dag_run, missing


def task_log(printed: str, task_id: str) -> list[str]:
    """The lines one task wrote while ``dag.test()`` ran it (without the in-process API server's lines)."""
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if "[DAG TEST] running task" in line
                 and f".{task_id} " in line)
    end = next(i for i in range(start, len(lines)) if f"[DAG TEST] end task task_id={task_id} " in lines[i])
    return [line for line in lines[start + 1:end] if "[airflow.api_fastapi." not in line]


__all__ = [
    "ALERTS_ENV", "Mail", "MailReceiver", "Post", "WebhookReceiver", "fail_prepare", "log_to_this_tests_stdout",
    "mail_receiver", "self_signed_cert", "task_log", "webhook_receiver",
]
