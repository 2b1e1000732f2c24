"""The backup bucket through the amazon provider's ``S3Hook``: upload, read back, manifest, "latest".

Order matters and is the whole point: (1) the dump is uploaded (multipart above ``multipart_threshold``);
(2) its size and SHA-256 are read back from the bucket; only then (3) the manifest is written beside it and
(4) the "latest" marker moves to it. A failed or partial upload therefore never has a manifest and is never
"latest"; the local dump stays for the retry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quantdbops import CONN_S3
from quantdbops.backup.naming import DUMP_SUFFIX, LATEST_NAME, MANIFEST_SUFFIX, BackupName
from quantdbops.retry import Exhausted, backoff_delays, call_with_retries

log = logging.getLogger(__name__)
MB = 1024 * 1024
DEFAULT_TRANSFER = {"multipart_threshold": 64 * MB, "multipart_chunksize": 64 * MB, "max_concurrency": 4}


class BackupStoreError(RuntimeError):
    """The bucket could not be reached or did not hold what was written."""


@dataclass(frozen=True)
class RetryPolicy:
    """In-task retries with exponential back-off (Airflow's task retries come on top)."""

    attempts: int = 3
    first_delay_s: float = 5.0
    max_delay_s: float = 60.0

    def delays(self) -> list[float]:
        return backoff_delays(self.attempts, self.first_delay_s, self.max_delay_s)


def make_hook(aws_conn_id: str = CONN_S3, *, transfer: dict[str, Any] | None = None,
              connect_timeout: float = 10, read_timeout: float = 60) -> Any:
    """An ``S3Hook`` with multipart transfer settings and bounded botocore timeouts and retries."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.config import Config

    config = Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                    retries={"max_attempts": 2, "mode": "standard"})
    return S3Hook(aws_conn_id=aws_conn_id, transfer_config_args={**DEFAULT_TRANSFER, **(transfer or {})},
                  config=config)


def _transient() -> tuple[type[BaseException], ...]:
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError, S3UploadFailedError, OSError)


def with_retries(what: str, fn: Callable[[], Any], policy: RetryPolicy,
                 say: Callable[..., None] = log.warning) -> Any:
    """Run ``fn``; on a transient S3 error wait and try again; after the last attempt raise with the story."""
    def retrying(attempt: int, exc: BaseException, wait: float) -> None:
        say("%s failed (attempt %d of %d: %s); retrying in %.1fs", what, attempt, policy.attempts, exc, wait)

    try:
        return call_with_retries(fn, attempts=policy.attempts, first_delay_s=policy.first_delay_s,
                                 max_delay_s=policy.max_delay_s, retry_on=_transient(), on_retry=retrying)[0]
    except Exhausted as exc:
        story = "; ".join(f"attempt {n}: {type(e).__name__}: {e}" for n, e in enumerate(exc.errors, 1))
        raise BackupStoreError(f"{what} failed after {policy.attempts} attempts: {story}") from None


def check_bucket(hook: Any, bucket: str) -> None:
    """The bucket answers ``HeadBucket`` (exists, reachable, credentials good), else a clear error."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        hook.get_conn().head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        raise BackupStoreError(f"bucket {bucket!r} is not usable ({code}): create it or fix the quant_s3 "
                               "connection's credentials") from exc
    except BotoCoreError as exc:
        raise BackupStoreError(f"the S3 endpoint of connection quant_s3 does not answer ({exc}): check its "
                               "endpoint_url / network") from exc


def object_sha256(hook: Any, bucket: str, key: str) -> tuple[int, str]:
    """(size, SHA-256) of an object, streamed back from the bucket."""
    body = hook.get_conn().get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    size = 0
    for chunk in body.iter_chunks(chunk_size=MB):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def upload_dump(hook: Any, bucket: str, local_path: str, key: str, *, size_bytes: int, sha256: str,
                policy: RetryPolicy = RetryPolicy(), say: Callable[..., None] = log.warning) -> dict[str, Any]:
    """Upload and read back; raise ``BackupStoreError`` unless the bucket holds exactly the local bytes."""
    start = time.perf_counter()
    with_retries(f"upload of {key}", lambda: hook.load_file(local_path, key, bucket_name=bucket, replace=True),
                 policy, say)
    upload_s = time.perf_counter() - start
    head = with_retries(f"read-back of {key}", lambda: hook.head_object(key, bucket_name=bucket), policy, say)
    if head is None or int(head["ContentLength"]) != size_bytes:
        got = None if head is None else head["ContentLength"]
        raise BackupStoreError(f"read-back of s3://{bucket}/{key}: size {got} != local {size_bytes}")
    remote_size, remote_sha = with_retries(f"checksum read-back of {key}",
                                           lambda: object_sha256(hook, bucket, key), policy, say)
    if remote_sha != sha256 or remote_size != size_bytes:
        raise BackupStoreError(f"read-back of s3://{bucket}/{key}: sha256 {remote_sha} != local {sha256}")
    return {"upload_seconds": round(upload_s, 3), "readback_seconds": round(time.perf_counter() - start - upload_s, 3),
            "etag": head.get("ETag")}


def put_json(hook: Any, bucket: str, key: str, payload: dict[str, Any], policy: RetryPolicy = RetryPolicy(),
             say: Callable[..., None] = log.warning) -> None:
    data = json.dumps(payload, indent=2, sort_keys=True, default=str).encode()
    with_retries(f"write of {key}", lambda: hook.load_bytes(data, key, bucket_name=bucket, replace=True),
                 policy, say)


def get_json(hook: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """The JSON object at ``key``, None if there is none."""
    if hook.head_object(key, bucket_name=bucket) is None:
        return None
    return json.loads(hook.read_key(key, bucket_name=bucket))


def latest_pointer(name: BackupName, manifest: dict[str, Any], dump_key: str, manifest_key: str) -> dict[str, Any]:
    return {"name": name.stem, "s3_key": dump_key, "manifest_key": manifest_key, "sha256": manifest["sha256"],
            "size_bytes": manifest["size_bytes"], "taken_at": manifest["taken_at"]}


@dataclass
class StoredBackup:
    """A backup name found in the bucket, with the keys that belong to it."""

    name: BackupName
    dump_key: str | None = None
    manifest_key: str | None = None


def list_backups(hook: Any, bucket: str, prefix: str) -> dict[str, StoredBackup]:
    """Every backup under ``prefix`` (``backups/<db>/``) by name; objects without a backup name are ignored."""
    out: dict[str, StoredBackup] = {}
    for key in hook.list_keys(bucket_name=bucket, prefix=prefix) or []:
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


def download(hook: Any, bucket: str, key: str, local_path: str, policy: RetryPolicy = RetryPolicy(),
             say: Callable[..., None] = log.warning) -> None:
    """Download to ``local_path`` (multipart, through the hook's client and transfer config)."""
    with_retries(f"download of {key}", lambda: hook.get_conn().download_file(
        bucket, key, local_path, Config=hook.transfer_config), policy, say)
