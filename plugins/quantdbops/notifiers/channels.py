"""Where alerts go: a webhook (HTTP POST of JSON) or e-mail (SMTP), read from one Airflow connection and sent by
the Airflow providers' notifiers (``HttpNotifier`` of apache-airflow-providers-http, ``SmtpNotifier`` of
apache-airflow-providers-smtp).

The connection's type picks the channel:

- ``http`` / ``https`` / ``webhook``: POST to ``extra.url``, else to ``<scheme>://host[:port]/<path>``
  (the URI form ``http://host:port/path`` puts the path in ``schema``; a ``schema`` of ``http`` or
  ``https`` is taken as the scheme, as the HTTP provider does, and ``extra.endpoint`` is the path then).
  ``extra.format``: ``json`` (default: every field of the report plus ``text``) or ``slack`` (only
  ``{"text": ...}``, what Slack's and Mattermost's incoming webhooks take).
- ``smtp`` / ``email``: host, port, login, password; ``extra.to`` (a list, or separated by commas or
  semicolons; required), ``extra.from`` (default: the login, else ``airflow@<host name>``), ``extra.starttls``
  (default: true on port 587), ``extra.ssl`` (SMTPS, default: true on port 465).

The providers' hooks do not read these extras as they are (the HTTP hook would send each unknown extra as a
header; the SMTP hook's defaults are SMTPS and STARTTLS both on, with retries of its own), so each channel hands
its hook a connection of the hook's own spelling. Both retry a failed delivery a few times through tenacity
(``extra.attempts``, default 3, at most 5; the wait starts at ``extra.retry_delay`` seconds, default 2, and
doubles, at most 30 s) with ``extra.timeout`` seconds (default 10; whole seconds for e-mail) per attempt, so a
dead channel costs the failing task well under a minute. Only what may pass is retried: a refused connection,
a timeout, HTTP 429 and 5xx, SMTP 4xx. Nothing here raises anything but ``DeliveryError`` and
``ChannelConfigError``.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.http.notifications.http import HttpNotifier
from airflow.providers.smtp.hooks.smtp import SmtpHook
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowException

from quantdbops.notifiers.message import FailureReport

WEBHOOK_TYPES = frozenset({"http", "https", "webhook"})
EMAIL_TYPES = frozenset({"smtp", "email"})
MAX_ATTEMPTS = 5
USER_AGENT = "quant-db-ops-alerts"
_CONN_ID = "quant_alerts"  # the name the providers' hooks carry; their connection is built here, not looked up
T = TypeVar("T")

# The HTTP hook's own lines quote the request URL, whose path is a webhook's secret: they go to this logger,
# which keeps errors only. Our lines (``failure.deliver``) say what happened without the path.
_HOOK_LOG = logging.getLogger("quantdbops.alerts.provider")
_HOOK_LOG.setLevel(logging.ERROR)


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
    """Delivery retries: ``attempts`` in all, waiting ``first_delay_s`` after the first failure and twice as
    long after each next one, at most ``max_delay_s``; only ``_Retryable`` failures are tried again."""

    attempts: int = 3
    first_delay_s: float = 2.0
    timeout_s: float = 10.0
    max_delay_s: float = 30.0

    def run(self, attempt: Callable[[], T], sleep: Callable[[float], None] | None = None) -> tuple[T, int]:
        """``(attempt(), attempts used)``; ``_Retryable`` failures are retried, others are final."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential(multiplier=self.first_delay_s, max=self.max_delay_s),
            retry=tenacity.retry_if_exception_type(_Retryable), sleep=sleep or time.sleep)
        try:
            result = retrying(attempt)
        except tenacity.RetryError as exc:
            last = exc.last_attempt.exception()
            raise DeliveryError(str(last), self.attempts) from last
        except DeliveryError as exc:
            exc.attempts = retrying.statistics["attempt_number"]
            raise
        return result, retrying.statistics["attempt_number"]


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


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain (requests' ConnectionError -> urllib3 -> ``ConnectionRefusedError``):
    its words name the cause without the URL the outer ones quote."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return exc


class _HttpStatus(Exception):
    """The receiver answered with an error status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status = status


class _WebhookHook(HttpHook):
    """The HTTP provider's hook POSTing to one URL: a connection of the hook's spelling (the whole URL as host,
    no extras) and an error status raised with its code, without logging the receiver's answer."""

    def __init__(self, url: str) -> None:
        super().__init__(method="POST", http_conn_id=_CONN_ID)
        self.url = url
        self.status: int | None = None

    @property
    def log(self) -> logging.Logger:  # type: ignore[override]
        return _HOOK_LOG

    def get_connection(self, conn_id: str) -> Connection:  # type: ignore[override]
        return Connection(conn_id=conn_id, conn_type="http", host=self.url)

    def check_response(self, response: requests.Response) -> None:
        self.status = response.status_code
        if response.status_code >= 400:
            raise _HttpStatus(response.status_code, response.reason)


@dataclass(frozen=True)
class Webhook:
    """HTTP POST of the report as JSON, by the HTTP provider's ``HttpNotifier``."""

    url: str
    fmt: str
    retry: Retry

    def describe(self) -> str:
        parts = urlsplit(self.url)  # never the path: a webhook's path is its secret
        return f"webhook {parts.scheme}://{parts.netloc} ({self.fmt})"

    def payload(self, report: FailureReport) -> dict[str, Any]:
        return {"text": report.text()} if self.fmt == "slack" else report.as_json()

    def send(self, report: FailureReport) -> str:
        payload = json.loads(json.dumps(self.payload(report), default=str))  # what json.dumps can send

        def attempt() -> int:
            notifier = HttpNotifier(http_conn_id=_CONN_ID, json=payload, headers={"User-Agent": USER_AGENT},
                                    extra_options={"timeout": self.retry.timeout_s})
            notifier.hook = hook = _WebhookHook(self.url)  # a fresh hook and session for each attempt
            try:
                notifier.notify({})  # not notifier(context): the report is rendered already, no Jinja on it
            except _HttpStatus as exc:
                if exc.status == 429 or exc.status >= 500:
                    raise _Retryable(str(exc)) from exc
                raise DeliveryError(f"{exc}: the receiver refused the alert (check the URL and its token)",
                                    1) from exc
            except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema, ValueError) as exc:
                raise DeliveryError(f"the webhook URL is not usable ({type(exc).__name__}): check its host and "
                                    "port", 1) from exc
            except (requests.exceptions.RequestException, OSError) as exc:  # refused, unreachable, timed out
                raise _Retryable(f"{type(exc).__name__}: {_root_cause(exc)}") from exc
            return hook.status or 0

        status, attempts = self.retry.run(attempt)
        size = len(json.dumps(payload).encode())
        return f"HTTP {status}, {attempts} attempt(s), {size:,} bytes"


class _MailHook(SmtpHook):
    """The SMTP provider's hook on one ``Email`` channel: a connection of the hook's spelling (its TLS choice,
    sender and timeout; no retries of its own: the delivery's retries are ours) that hangs up when STARTTLS or
    the login fails."""

    def __init__(self, channel: Email) -> None:
        super().__init__(smtp_conn_id=_CONN_ID)
        self.channel = channel

    def get_connection(self, conn_id: str) -> Connection:  # type: ignore[override]
        c = self.channel
        extra = {"from_email": c.sender, "disable_ssl": not c.ssl, "disable_tls": not c.starttls or c.ssl,
                 "retry_limit": 0, "timeout": max(1, math.ceil(c.retry.timeout_s))}
        return Connection(conn_id=conn_id, conn_type="smtp", host=c.host, port=c.port, login=c.login,
                          password=c.password, extra=json.dumps(extra))

    def get_conn(self) -> SmtpHook:
        try:
            return super().get_conn()
        except BaseException:
            if self._smtp_client is not None:  # connected, then STARTTLS or the login failed: hang up
                self.__exit__(None, None, None)
            raise


@dataclass(frozen=True)
class Email:
    """One mail per alert over SMTP (optionally STARTTLS or SMTPS, optionally with login), by the SMTP
    provider's ``SmtpNotifier``; the report's text as the body (the provider sends HTML: a ``<pre>`` block)."""

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

    def send(self, report: FailureReport) -> str:
        body = f"<pre>{html.escape(report.text())}</pre>"

        def attempt() -> None:
            notifier = SmtpNotifier(to=list(self.recipients), from_email=self.sender, subject=report.subject,
                                    html_content=body, smtp_conn_id=_CONN_ID)
            notifier.hook = _MailHook(self)  # a fresh hook and SMTP session for each attempt
            try:
                notifier.notify({})  # not notifier(context): the report is rendered already, no Jinja on it
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
            except AirflowException as exc:
                # The hook's "Unable to connect to smtp server" stands for a server that hung up at once.
                if isinstance(exc.__context__, smtplib.SMTPServerDisconnected):
                    raise _Retryable(f"{type(exc.__context__).__name__}: {exc.__context__}") from exc
                raise DeliveryError(str(exc), 1) from exc

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
    recipients = tuple(x.strip() for x in (re.split(r"[,;]", to) if isinstance(to, str) else to) if x.strip())
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
