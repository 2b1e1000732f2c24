"""Whether a failed PostgreSQL connection attempt can succeed when tried again, and what to do if not.

psycopg 3 raises ``OperationalError`` for every failed attempt, mostly without a SQLSTATE (the server's FATAL
arrives before there is a session): the SQLSTATE decides where there is one, else the text libpq wrote.
Deterministic: the database or the role does not exist, the password is refused, pg_hba.conf admits no such
connection, TLS does not fit. Transient: a timeout, a refused or dropped connection, a server starting up or
shutting down, no free connection slot; an unrecognised failure is treated as transient (Airflow retries it).
Messages name host, port, database and user only: never the password, never the DSN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from quantdbops.errors import ActionableFailure

_NEVER = re.compile(r"(?!)")
_SAFE_KEYS = ("host", "port", "dbname", "user")


@dataclass(frozen=True)
class _Rule:
    deterministic: bool
    sqlstates: frozenset[str]
    pattern: re.Pattern[str]
    cause: str  # str.format fields: name (the pattern's, else ``named``), said (libpq's words), host, port, ...
    why: str  # deterministic: why a retry cannot help; transient: what may pass
    what_to_do: str = ""
    named: str = "dbname"  # the connection's field that {name} means when the text does not say it


def _rule(deterministic: bool, states: str, pattern: str | None, cause: str, why: str, what_to_do: str = "",
          named: str = "dbname") -> _Rule:
    return _Rule(deterministic, frozenset(states.split()), re.compile(pattern, re.I) if pattern else _NEVER, cause,
                 why, what_to_do, named)


_THEN = "; then clear the task"
# Order matters where one SQLSTATE has several rules (28000): the text picks one, else the last of them.
RULES = (
    _rule(True, "3D000", r'database "(?P<name>[^"]*)" does not exist', 'database "{name}" does not exist',
          "a database does not appear by itself",
          "fix the database name (the Schema field of the Airflow connection) or create the database" + _THEN),
    _rule(True, "28000", r'role "(?P<name>[^"]*)" does not exist', 'role "{name}" does not exist',
          "a role does not appear by itself",
          "fix the login of the Airflow connection or create the role (CREATE ROLE ... LOGIN)" + _THEN, "user"),
    _rule(True, "28000", r"no pg_hba\.conf entry|pg_hba\.conf rejects connection",
          "the server's pg_hba.conf admits no such connection ({said})", "pg_hba.conf does not change by itself",
          "add a pg_hba.conf line for this client, user and database (or set sslmode=require on the connection "
          "if only hostssl lines admit it) and reload the server" + _THEN),
    _rule(True, "28P01", r'password authentication failed for user "(?P<name>[^"]*)"|no password supplied',
          'password authentication failed for user "{name}"', "the same password is refused again",
          "set the role's password on the Airflow connection (or ALTER ROLE ... PASSWORD on the server)" + _THEN,
          "user"),
    _rule(True, "28000", None, "the server refuses this login ({said})", "the same login is refused again",
          "read the server's log for the refusal and fix the connection's login or the role" + _THEN),
    _rule(True, "", r"server does not support SSL|SSL was required|SSL is not enabled|certificate verify failed|"
                    r"root certificate file .* does not exist|does not match host name|invalid sslmode value",
          "TLS does not fit ({said})", "the same TLS settings fail the same way",
          "make the sslmode / sslrootcert extras of the Airflow connection fit the server: sslmode=require needs "
          "ssl=on on the server, verify-ca and verify-full need the server's CA in sslrootcert (verify-full also "
          "the host name in its certificate)" + _THEN),
    _rule(False, "57P03 57P01", r"the database system is (starting up|shutting down|in recovery mode|not yet "
                                r"accepting connections)", "the server is starting up or shutting down",
          "a server back up accepts connections again"),
    _rule(False, "53300", r"too many clients|remaining connection slots are reserved",
          "the server has no free connection slot", "other sessions end and free their slots"),
    _rule(False, "", r"timeout expired|timed out", "the server did not answer in time",
          "a busy or unreachable server may answer later"),
    _rule(False, "08001", r"connection refused|could not connect", "nothing accepts connections at {host}:{port}",
          "a server that is down or restarting comes back"),
    _rule(False, "08006", r"server closed the connection unexpectedly|SSL SYSCALL error|connection reset",
          "the connection was dropped", "a restarted server or a network blip passes"),
)


@dataclass(frozen=True)
class ConnectVerdict:
    """A failed connection attempt: deterministic (a retry cannot help) or not, why, and what to do."""

    deterministic: bool
    cause: str
    why: str
    what_to_do: str = ""


def _pick(sqlstate: str | None, text: str) -> tuple[_Rule, re.Match[str] | None] | None:
    if sqlstate:
        by_state = [r for r in RULES if sqlstate in r.sqlstates]
        for r in by_state:
            if m := r.pattern.search(text):
                return r, m
        if by_state:
            return by_state[-1], None
    for r in RULES:
        if m := r.pattern.search(text):
            return r, m
    return None


def _said(text: str, match: re.Match[str] | None) -> str:
    """libpq's words about the failure, without its "connection to server at ... failed: FATAL:" prefix."""
    line = text[text.rfind("\n", 0, match.start()) + 1:].split("\n", 1)[0] if match else text.split("\n", 1)[0]
    return re.sub(r"^(connection failed:\s*)?(connection to server .*? failed:\s*)?(FATAL:\s*)?", "", line).strip()


def safe_target(kwargs: dict[str, Any]) -> dict[str, str]:
    """Host, port, database and user of connection arguments (kwargs or a ``conninfo``): nothing secret."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    merged = dict(kwargs)
    if kwargs.get("conninfo"):
        try:
            merged = {**conninfo_to_dict(str(kwargs["conninfo"])), **kwargs}
        except psycopg.Error:  # a DSN libpq cannot parse: nothing to name but the defaults
            pass
    out = {k: str(merged[k]) for k in _SAFE_KEYS if merged.get(k) not in (None, "")}
    out.setdefault("host", "localhost")
    out.setdefault("port", "5432")
    out.setdefault("user", "(libpq's default)")
    out.setdefault("dbname", out["user"])  # libpq's default: the user's name
    return out


def classify(exc: BaseException, target: dict[str, str] | None = None) -> ConnectVerdict:
    """What a failed connection attempt (``psycopg.OperationalError``) means; ``target`` from ``safe_target``."""
    where = {"host": "?", "port": "?", "dbname": "?", "user": "?", **(target or {})}
    text = str(exc)
    picked = _pick(getattr(exc, "sqlstate", None), text)
    if picked is None:
        return ConnectVerdict(False, "unrecognised connection failure", "it is not known to be permanent")
    rule, match = picked
    name = (match.groupdict().get("name") if match else None) or where[rule.named]
    fields = {**where, "name": name, "said": _said(text, match)}
    return ConnectVerdict(rule.deterministic, rule.cause.format(**fields), rule.why, rule.what_to_do)


def not_retried(exc: BaseException, target: dict[str, str]) -> ActionableFailure | None:
    """The failure to raise at once for a deterministic connection failure; None for a transient one."""
    verdict = classify(exc, target)
    if not verdict.deterministic:
        return None
    return ActionableFailure(
        f"cannot connect to PostgreSQL at {target['host']}:{target['port']} (database {target['dbname']}, user "
        f"{target['user']}): {verdict.cause}; not retried: {verdict.why}", what_to_do=verdict.what_to_do)


def transient_note(exc: BaseException, target: dict[str, str] | None = None) -> str:
    """The line a transient connection failure carries in the log (``add_note``)."""
    verdict = classify(exc, target)
    return (f"transient ({verdict.cause}; {verdict.why}): the task fails normally and Airflow's task retries "
            "follow")


__all__ = ["RULES", "ConnectVerdict", "classify", "not_retried", "safe_target", "transient_note"]
