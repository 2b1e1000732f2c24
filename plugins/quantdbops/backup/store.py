"""The backup bucket through the amazon provider's ``S3Hook``: JSON objects (manifest, "latest"), listings, the
retry rules of every call. The dump itself streams in through ``backup.stream``.

Order matters and is the whole point: (1) the dump's multipart upload completes (a failed one is aborted and
leaves nothing); (2) its size, and before "latest" moves its SHA-256, are read back from the bucket; only then
(3) the manifest is written beside it and (4) the "latest" marker moves to it. A failed or partial upload
therefore never has a manifest and is never "latest".

Every call goes through ``with_retries``, tenacity with ``s3_error`` as its retry predicate: what a retry
cannot fix (no such bucket, access denied, bad credentials) fails at once with ``ActionableFailure``, which
Airflow does not retry either; what may pass (timeouts, refused connections, throttling, 5xx) is tried again
with capped exponential back-off, then fails normally so Airflow's task retries follow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tenacity

from quantdbops import CONN_S3
from quantdbops.backup.naming import BUCKET_VARIABLE, DUMP_SUFFIX, LATEST_NAME, MANIFEST_SUFFIX, BackupName
from quantdbops.errors import ActionableFailure

log = logging.getLogger(__name__)
MB = 1024 * 1024


class BackupStoreError(RuntimeError):
    """The bucket could not be reached or did not hold what was written."""


@dataclass(frozen=True)
class RetryPolicy:
    """In-task retries of the S3 calls: ``attempts`` in all, waiting ``first_delay_s`` after the first failure
    and twice as long after each next one, at most ``max_delay_s`` (Airflow's task retries come on top)."""

    attempts: int = 3
    first_delay_s: float = 5.0
    max_delay_s: float = 60.0

    def wait(self) -> tenacity.wait.wait_base:
        return tenacity.wait_exponential(multiplier=self.first_delay_s, max=self.max_delay_s)

    def delays(self) -> list[float]:
        """The waits between the attempts, as tenacity computes them."""
        wait, state = self.wait(), tenacity.RetryCallState(None, None, (), {})
        out = []
        for n in range(1, self.attempts):
            state.attempt_number = n
            out.append(wait(state))
        return out

    def retrying(self, **hooks: Any) -> tenacity.Retrying:
        """tenacity's loop for this policy: only transient S3 errors (``s3_error``) are tried again."""
        return tenacity.Retrying(stop=tenacity.stop_after_attempt(self.attempts), wait=self.wait(),
                                 retry=tenacity.retry_if_exception(_transient), **hooks)


DEFAULT_RETRY = RetryPolicy()


def make_hook(aws_conn_id: str = CONN_S3, *, connect_timeout: float = 10, read_timeout: float = 60,
              sdk_retries: int = 2) -> Any:
    """An ``S3Hook`` with bounded botocore timeouts and retries (``sdk_retries`` more requests per call for what
    botocore itself retries: throttling, 5xx, dropped connections)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.config import Config

    config = Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                    retries={"max_attempts": sdk_retries, "mode": "standard"})
    return S3Hook(aws_conn_id=aws_conn_id, config=config)


DETERMINISTIC = "deterministic"
TRANSIENT = "transient"
_MISSING_BUCKET = frozenset({"NoSuchBucket"})
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})  # a HEAD's 404 does not say whether bucket or key
_ACCESS = frozenset({"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccountProblem"})
_CREDENTIALS = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                          "NoCredentialsError", "PartialCredentialsError"})
_BAD_NAME = frozenset({"InvalidBucketName", "ParamValidationError"})
_NO_RETRY = _MISSING_BUCKET | _MISSING | _ACCESS | _CREDENTIALS | _BAD_NAME
_RETRY = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests",
                    "429", "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed",
                    "500", "502", "503", "504"})


def s3_error(exc: BaseException) -> tuple[str, str] | None:
    """``(DETERMINISTIC or TRANSIENT, code)`` of an error an S3 call raised; None when it is no error of S3 or
    of the network (a bug, a local file): it then propagates untouched.

    Deterministic, a retry cannot help (fail at once; Airflow does not retry either): NoSuchBucket;
    NoSuchKey, 404 / NotFound (a HEAD: the bucket's, else the key's or its bucket's); AccessDenied, 403,
    Forbidden, AllAccessDisabled, AccountProblem; InvalidAccessKeyId, SignatureDoesNotMatch, ExpiredToken,
    InvalidToken and botocore's NoCredentialsError / PartialCredentialsError; InvalidBucketName and
    botocore's ParamValidationError (a bucket name or key refused before anything is sent).

    Transient, may pass (retried here with back-off, then the task fails and Airflow's retries follow):
    botocore's ConnectTimeoutError, ReadTimeoutError, EndpointConnectionError (connection refused),
    ConnectionClosedError and its other errors; OSError (reset, broken pipe); SlowDown, Throttling,
    ThrottlingException, RequestLimitExceeded, TooManyRequests, 429; InternalError, ServiceUnavailable,
    RequestTimeout, RequestTimeTooSkewed (botocore corrects the clock), 500, 502, 503, 504. Another code
    goes by its HTTP status (403 and 404 deterministic) and is otherwise retried, as every error was before
    this classification. boto3's ``S3UploadFailedError`` is judged by the ``ClientError`` it wraps.
    """
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        ParamValidationError,
        PartialCredentialsError,
    )

    if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
        exc = exc.__context__
    if isinstance(exc, ClientError):
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        code = str(exc.response.get("Error", {}).get("Code") or status or "?")
        if code in _NO_RETRY or (code not in _RETRY and status in ("403", "404")):
            return DETERMINISTIC, code
        return TRANSIENT, code
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError, ParamValidationError)):
        return DETERMINISTIC, type(exc).__name__
    if isinstance(exc, (BotoCoreError, S3UploadFailedError, OSError)):
        return TRANSIENT, type(exc).__name__
    return None


def _transient(exc: BaseException) -> bool:
    verdict = s3_error(exc)
    return verdict is not None and verdict[0] == TRANSIENT


def not_retried(exc: BaseException, what: str, *, bucket: str | None, key: str | None = None,
                conn_id: str = CONN_S3) -> ActionableFailure | None:
    """The failure to raise for a deterministic S3 error, naming the bucket / key, the code and what to do;
    None for any other error."""
    verdict = s3_error(exc)
    if verdict is None or verdict[0] != DETERMINISTIC:
        return None
    code = verdict[1]
    b = repr(bucket) if bucket else "the bucket"
    conn = f"connection {conn_id}"
    if code in _MISSING_BUCKET or (code in _MISSING and key is None):
        meaning = f"bucket {b} does not exist at the endpoint of {conn}"
        why = "a bucket does not appear by itself"
        todo = (f"create bucket {b}, or fix the bucket param (else the Airflow Variable {BUCKET_VARIABLE}) or the "
                f"endpoint_url of {conn}; then clear this task")
    elif code in _MISSING:
        meaning = f"there is no object s3://{bucket}/{key}" + ("" if code == "NoSuchKey" else ", or no such bucket")
        why = "an object does not appear by itself"
        todo = ("check the bucket and the key (a backup param naming a mistyped backup, or one retention deleted "
                "after retention_days); then trigger again or clear this task")
    elif code in _ACCESS:
        meaning = f"the credentials of {conn} may not do this in {b}"
        why = "permissions do not change by themselves"
        todo = (f"grant them s3:ListBucket on {b} and s3:GetObject, s3:PutObject, s3:DeleteObject on its objects "
                f"(IAM or bucket policy), or give {conn} credentials that have them; then clear this task")
    elif code in _CREDENTIALS:
        meaning = f"the store rejects the credentials of {conn}"
        why = "the same credentials are rejected again"
        todo = f"fix the access key id and secret of {conn} (or renew its session token); then clear this task"
    else:
        meaning = f"the bucket name {b} or the key is not valid"
        why = "the same name is refused again"
        todo = (f"fix the bucket param or the Airflow Variable {BUCKET_VARIABLE} (3-63 lowercase letters, "
                "digits, dots and hyphens); then trigger again")
    said = " ".join(str(exc).split())  # one line: the first line of the failure is the alert's
    return ActionableFailure(f"{what}: {meaning} ({code}; {type(exc).__name__}: {said}); not retried: {why}",
                             what_to_do=todo)


def with_retries(what: str, fn: Callable[[], Any], policy: RetryPolicy,
                 say: Callable[..., None] = log.warning, *, bucket: str | None = None, key: str | None = None,
                 hook: Any = None) -> Any:
    """Run ``fn``; on a transient S3 error wait and try again; after the last attempt raise
    ``BackupStoreError`` with the story. A deterministic error raises ``ActionableFailure`` at once."""
    errors: list[BaseException] = []

    def retrying(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception()  # type: ignore[union-attr]
        code = (s3_error(exc) or ("", type(exc).__name__))[1]
        say("%s failed (attempt %d of %d, transient %s: %s); retrying in %.1fs", what, state.attempt_number,
            policy.attempts, code, exc, state.next_action.sleep)  # type: ignore[union-attr]

    def failed(state: tenacity.RetryCallState) -> None:
        errors.append(state.outcome.exception())  # type: ignore[union-attr, arg-type]

    try:
        return policy.retrying(after=failed, before_sleep=retrying)(fn)
    except tenacity.RetryError:
        story = "; ".join(f"attempt {n}: {type(e).__name__}: {e}" for n, e in enumerate(errors, 1))
        raise BackupStoreError(f"{what} failed after {policy.attempts} attempts: {story}. These errors are "
                               "transient (network, throttling, server errors): the task fails normally and "
                               "Airflow's task retries follow") from None
    except Exception as exc:
        failure = not_retried(exc, what, bucket=bucket, key=key,
                              conn_id=getattr(hook, "aws_conn_id", None) or CONN_S3)
        if failure is None:
            raise
        raise failure from exc


def check_bucket(hook: Any, bucket: str, policy: RetryPolicy = RetryPolicy(),
                 say: Callable[..., None] = log.warning) -> None:
    """The bucket answers ``HeadBucket`` (exists, reachable, credentials good). A missing bucket or refused
    credentials raise ``ActionableFailure`` at once; an endpoint that does not answer, after the retries,
    ``BackupStoreError``."""
    with_retries(f"bucket check of {bucket!r}", lambda: hook.get_conn().head_bucket(Bucket=bucket), policy, say,
                 bucket=bucket, hook=hook)


def put_json(hook: Any, bucket: str, key: str, payload: dict[str, Any], policy: RetryPolicy = DEFAULT_RETRY,
             say: Callable[..., None] = log.warning, *, encryption: Any = None) -> None:
    """Write a JSON object (``encryption``: a ``stream.Encryption`` asking S3 to encrypt it at rest)."""
    data = json.dumps(payload, indent=2, sort_keys=True, default=str).encode()
    extra = encryption.request_args() if encryption is not None else {}
    with_retries(f"write of {key}", lambda: hook.get_conn().put_object(
        Bucket=bucket, Key=key, Body=data, ContentType="application/json", **extra),
        policy, say, bucket=bucket, key=key, hook=hook)


def get_json(hook: Any, bucket: str, key: str, policy: RetryPolicy = RetryPolicy()) -> dict[str, Any] | None:
    """The JSON object at ``key``, None if there is none."""
    if with_retries(f"look-up of {key}", lambda: hook.head_object(key, bucket_name=bucket), policy, bucket=bucket,
                    key=key, hook=hook) is None:
        return None
    return json.loads(with_retries(f"read of {key}", lambda: hook.read_key(key, bucket_name=bucket), policy,
                                   bucket=bucket, key=key, hook=hook))


def latest_pointer(name: BackupName, manifest: dict[str, Any], dump_key: str, manifest_key: str) -> dict[str, Any]:
    return {"name": name.stem, "s3_key": dump_key, "manifest_key": manifest_key, "sha256": manifest["sha256"],
            "size_bytes": manifest["size_bytes"], "taken_at": manifest["taken_at"]}


@dataclass
class StoredBackup:
    """A backup name found in the bucket, with the keys that belong to it."""

    name: BackupName
    dump_key: str | None = None
    manifest_key: str | None = None


def list_backups(hook: Any, bucket: str, prefix: str, policy: RetryPolicy = RetryPolicy()) -> dict[str, StoredBackup]:
    """Every backup under ``prefix`` (``backups/<db>/``) by name; objects without a backup name are ignored."""
    out: dict[str, StoredBackup] = {}
    keys = with_retries(f"listing of {prefix}", lambda: hook.list_keys(bucket_name=bucket, prefix=prefix), policy,
                        bucket=bucket, hook=hook)
    for key in keys or []:
        if key.endswith(LATEST_NAME):
            continue
        name = BackupName.parse(key)
        if name is None:
            continue
        item = out.setdefault(name.stem, StoredBackup(name))
        if key.endswith(DUMP_SUFFIX):
            item.dump_key = key
        elif key.endswith(MANIFEST_SUFFIX):
            item.manifest_key = key
    return out
