"""Where alerts go: a webhook (HTTP POST of JSON) or e-mail (SMTP), read from one Airflow connection.

The connection's type picks the channel:

- ``http`` / ``https`` / ``webhook``: POST to ``extra.url``, else to ``<scheme>://host[:port]/<path>``
  (the URI form ``http://host:port/path`` puts the path in ``schema``; a ``schema`` of ``http`` or
  ``https`` is taken as the scheme, as the HTTP provider does, and ``extra.endpoint`` is the path then).
  ``extra.format``: ``json`` (default: every field of the report plus ``text``) or ``slack`` (only
  ``{"text": ...}``, what Slack's and Mattermost's incoming webhooks take).
- ``smtp`` / ``email``: host, port, login, password; ``extra.to`` (a list or comma-separated, required),
  ``extra.from`` (default: the login, else ``airflow@<host name>``), ``extra.starttls`` (default: true on
  port 587), ``extra.ssl`` (SMTPS, default: true on port 465).

Both retry a failed delivery a few times (``extra.attempts``, default 3, at most 5; the wait starts at
``extra.retry_delay`` seconds, default 2, and doubles) with ``extra.timeout`` seconds (default 10) per
attempt, so a dead channel costs the failing task well under a minute. Nothing here raises anything but
``DeliveryError`` and ``ChannelConfigError``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from quantdbops.notifiers.message import FailureReport
from quantdbops.retry import Exhausted, call_with_retries

WEBHOOK_TYPES = frozenset({"http", "https", "webhook"})
EMAIL_TYPES = frozenset({"smtp", "email"})
MAX_ATTEMPTS = 5
T = TypeVar("T")


class ChannelConfigError(ValueError):
    """The alert connection cannot describe a channel (a wrong type, no URL, no recipient)."""


class DeliveryError(Exception):
    """The channel did not take the alert after every attempt."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class _Retryable(Exception):
    """One attempt failed in a way another attempt may not (the channel was down, busy or slow)."""


@dataclass(frozen=True)
class Retry:
    attempts: int = 3
    first_delay_s: float = 2.0
    timeout_s: float = 10.0

    def run(self, attempt: Callable[[], T], sleep: Callable[[float], None] | None = None) -> tuple[T, int]:
        """``(attempt(), attempts used)``; ``_Retryable`` failures are retried, others are final."""
        tries = 0

        def counted() -> T:
            nonlocal tries
            tries += 1
            return attempt()

        try:
            return call_with_retries(counted, attempts=self.attempts, first_delay_s=self.first_delay_s,
                                     retry_on=(_Retryable,), sleep=sleep)
        except Exhausted as exc:
            raise DeliveryError(str(exc.errors[-1]), tries) from exc.errors[-1]
        except DeliveryError as exc:
            exc.attempts = tries
            raise


def _flag(value: object, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ChannelConfigError(f"{value!r} is not a true/false value")


def _number(extra: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    raw = extra.get(key, default)
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise ChannelConfigError(f"extra.{key} = {raw!r} is not a number") from exc
    if not low <= value <= high:
        raise ChannelConfigError(f"extra.{key} = {raw!r} is outside {low:g}..{high:g}")
    return value


def _retry(extra: dict[str, Any]) -> Retry:
    return Retry(attempts=int(_number(extra, "attempts", 3, 1, MAX_ATTEMPTS)),
                 first_delay_s=_number(extra, "retry_delay", 2.0, 0, 30),
                 timeout_s=_number(extra, "timeout", 10.0, 0.1, 60))


@dataclass(frozen=True)
class Webhook:
    """HTTP POST of the report as JSON."""

    url: str
    fmt: str
    retry: Retry

    def describe(self) -> str:
        parts = urlsplit(self.url)  # never the path: a webhook's path is its secret
        return f"webhook {parts.scheme}://{parts.netloc} ({self.fmt})"

    def body(self, report: FailureReport) -> bytes:
        payload = {"text": report.text()} if self.fmt == "slack" else report.as_json()
        return json.dumps(payload, default=str).encode()

    def send(self, report: FailureReport) -> str:
        import urllib.error
        import urllib.request

        data = self.body(report)

        def attempt() -> int:
            req = urllib.request.Request(self.url, data=data, method="POST", headers={
                "Content-Type": "application/json", "User-Agent": "quant-db-ops-alerts"})
            try:
                with urllib.request.urlopen(req, timeout=self.retry.timeout_s) as resp:
                    return resp.status
            except urllib.error.HTTPError as exc:
                if exc.code == 429 or exc.code >= 500:
                    raise _Retryable(f"HTTP {exc.code} {exc.reason}") from exc
                raise DeliveryError(f"HTTP {exc.code} {exc.reason}: the receiver refused the alert "
                                    "(check the URL and its token)", 1) from exc
            except (urllib.error.URLError, OSError) as exc:  # refused, unreachable, timed out
                raise _Retryable(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from exc
            except ValueError as exc:  # a URL urllib cannot use (bad port, bad host)
                raise DeliveryError(f"the webhook URL is not usable: {exc}", 1) from exc

        status, attempts = self.retry.run(attempt)
        return f"HTTP {status}, {attempts} attempt(s), {len(data):,} bytes"


@dataclass(frozen=True)
class Email:
    """One plain-text mail per alert over SMTP (optionally STARTTLS or SMTPS, optionally with login)."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    login: str | None
    password: str | None
    starttls: bool
    ssl: bool
    retry: Retry

    def describe(self) -> str:
        tls = "SMTPS" if self.ssl else "STARTTLS" if self.starttls else "no TLS"
        return f"e-mail via {self.host}:{self.port} ({tls}) to {', '.join(self.recipients)}"

    def message(self, report: FailureReport) -> Any:
        from email.message import EmailMessage

        msg = EmailMessage()
        msg["Subject"] = report.subject
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg.set_content(report.text())
        return msg

    def send(self, report: FailureReport) -> str:
        import smtplib
        import ssl

        msg = self.message(report)

        def attempt() -> None:
            try:
                cls = smtplib.SMTP_SSL if self.ssl else smtplib.SMTP
                kwargs: dict[str, Any] = {"context": ssl.create_default_context()} if self.ssl else {}
                with cls(self.host, self.port, timeout=self.retry.timeout_s, **kwargs) as smtp:
                    if self.starttls and not self.ssl:
                        smtp.starttls(context=ssl.create_default_context())
                    if self.login:
                        smtp.login(self.login, self.password or "")
                    smtp.send_message(msg)
            except ssl.SSLCertVerificationError as exc:
                raise DeliveryError(f"the SMTP server's TLS certificate is not trusted here: {exc.verify_message}",
                                    1) from exc
            except smtplib.SMTPAuthenticationError as exc:
                raise DeliveryError(f"SMTP login refused ({exc.smtp_code}): check the connection's login "
                                    "and password", 1) from exc
            except smtplib.SMTPResponseException as exc:
                if 400 <= exc.smtp_code < 500:  # the server asks to try again later
                    raise _Retryable(f"SMTP {exc.smtp_code} {exc.smtp_error!r}") from exc
                raise DeliveryError(f"SMTP {exc.smtp_code} {exc.smtp_error!r}", 1) from exc
            except smtplib.SMTPRecipientsRefused as exc:
                raise DeliveryError(f"every recipient was refused: {sorted(exc.recipients)}", 1) from exc
            except (smtplib.SMTPException, OSError) as exc:  # down, disconnected, TLS failed, timed out
                raise _Retryable(f"{type(exc).__name__}: {exc}") from exc

        _, attempts = self.retry.run(attempt)
        return f"{len(self.recipients)} recipient(s), {attempts} attempt(s)"


def _webhook(conn: Any, extra: dict[str, Any]) -> Webhook:
    conn_type = (conn.conn_type or "").lower()
    url = extra.get("url")
    if not url:
        host = (conn.host or "").strip()
        if not host:
            raise ChannelConfigError("a webhook connection needs extra.url or a host")
        schema = (conn.schema or "").strip()
        if "://" in host:
            url = host.rstrip("/")
        else:
            scheme = schema if schema in ("http", "https") else "https" if conn_type == "https" else "http"
            url = f"{scheme}://{host}"
        if conn.port and not urlsplit(url).port:
            url += f":{conn.port}"
        path = extra.get("endpoint") or ("" if schema in ("http", "https") else schema)
        if path:
            url += "/" + str(path).lstrip("/")
    if urlsplit(url).scheme not in ("http", "https"):
        raise ChannelConfigError(f"the webhook URL must be http(s), not {urlsplit(url).scheme or 'schemeless'}")
    fmt = str(extra.get("format", "json")).lower()
    if fmt not in ("json", "slack"):
        raise ChannelConfigError(f"extra.format must be json or slack, not {fmt!r}")
    return Webhook(url=url, fmt=fmt, retry=_retry(extra))


def _email(conn: Any, extra: dict[str, Any]) -> Email:
    if not conn.host:
        raise ChannelConfigError("an SMTP connection needs a host")
    to = extra.get("to") or []
    recipients = tuple(x.strip() for x in (to.split(",") if isinstance(to, str) else to) if x.strip())
    if not recipients:
        raise ChannelConfigError("an SMTP connection needs extra.to (who gets the alerts)")
    port = int(conn.port or 25)
    return Email(host=conn.host, port=port,
                 sender=extra.get("from") or conn.login or f"airflow@{socket.gethostname()}",
                 recipients=recipients, login=conn.login or None, password=conn.password or None,
                 starttls=_flag(extra.get("starttls"), port == 587), ssl=_flag(extra.get("ssl"), port == 465),
                 retry=_retry(extra))


def channel_from_connection(conn: Any) -> Webhook | Email:
    """The channel an Airflow connection describes; ``ChannelConfigError`` says what is missing."""
    extra = conn.extra_dejson or {}
    conn_type = (conn.conn_type or "").lower()
    if conn_type in WEBHOOK_TYPES:
        return _webhook(conn, extra)
    if conn_type in EMAIL_TYPES:
        return _email(conn, extra)
    raise ChannelConfigError(f"connection type {conn.conn_type!r} is not an alert channel: use http/https "
                             "(webhook) or smtp (e-mail)")


__all__ = ["ChannelConfigError", "DeliveryError", "Email", "Retry", "Webhook", "channel_from_connection"]
