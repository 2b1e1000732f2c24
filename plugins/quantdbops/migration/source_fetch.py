"""A source file that lives in a bucket: fetched once per run and worker into a temp dir of its own.

``source_path`` (or the ``spock_sqlite`` connection's host) may name ``s3://bucket/key``: a worker then needs
nothing local but a temp dir, whatever host the task lands on. Each task of a run that reads the source asks
for it; the first on a worker downloads it (streamed, SHA-256 computed on the way, size checked against the
object's, and against an expected digest when one is given), the others on that worker reuse the copy while
the object is unchanged (same ETag and size). Copies of runs older than two days are removed on the way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantdbops.migration.source import SourceError

S3_PREFIX = "s3://"
CACHE_DIR_NAME = "quant-db-ops-sources"
KEEP_SECONDS = 2 * 86_400
CHUNK = 8 * 1024 * 1024


def is_s3(path: str) -> bool:
    return path.startswith(S3_PREFIX)


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key``; ``SourceError`` for anything else."""
    bucket, _, key = uri[len(S3_PREFIX):].partition("/")
    if not bucket or not key or key.endswith("/"):
        raise SourceError(f"{uri} is not an object URI: write s3://<bucket>/<key of the SQLite file>")
    return bucket, key


@dataclass(frozen=True)
class FetchedSource:
    """The local copy of an object, and what was checked about it."""

    path: Path
    uri: str
    size_bytes: int
    sha256: str
    etag: str
    downloaded: bool  # False: an earlier task of the run on this worker had fetched it
    seconds: float


def _cache_root() -> Path:
    return Path(tempfile.gettempdir()) / CACHE_DIR_NAME


def _forget_old_runs(root: Path, keep: Path) -> None:
    now = time.time()
    for run_dir in root.iterdir() if root.is_dir() else []:
        if run_dir != keep and run_dir.is_dir() and now - run_dir.stat().st_mtime > KEEP_SECONDS:
            shutil.rmtree(run_dir, ignore_errors=True)


def fetch_source(uri: str, *, run_id: str, hook: Any, expected_sha256: str | None = None) -> FetchedSource:
    """The object at ``uri`` as a local file of this run (see the module's docstring).

    Deterministic problems (no such object, a size or digest that differs) raise ``SourceError``; the
    bucket's own transient errors propagate, so the task's retries apply."""
    from botocore.exceptions import ClientError

    bucket, key = split_s3(uri)
    started = time.monotonic()
    try:
        head = hook.get_conn().head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
            raise SourceError(f"source {uri} does not exist ({code}): check the bucket and key in source_path "
                              "or the spock_sqlite connection") from exc
        if code in ("403", "AccessDenied"):
            raise SourceError(f"source {uri} cannot be read with connection quant_s3 ({code}): grant s3:GetObject "
                              "on it") from exc
        raise
    size, etag = int(head["ContentLength"]), str(head.get("ETag", "")).strip('"')
    run_dir = _cache_root() / re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", key.rsplit("/", 1)[-1]) or "source.db"
    local = run_dir / f"{hashlib.sha256(uri.encode()).hexdigest()[:12]}-{name}"
    meta = local.with_name(local.name + ".json")
    if local.is_file() and meta.is_file():
        seen = json.loads(meta.read_text())
        if (seen.get("etag"), seen.get("size")) == (etag, size) and local.stat().st_size == size:
            _check_digest(uri, seen["sha256"], expected_sha256)
            return FetchedSource(local, uri, size, seen["sha256"], etag, False, time.monotonic() - started)
    partial = local.with_name(local.name + f".part-{os.getpid()}")
    digest = hashlib.sha256()
    written = 0
    try:
        body = hook.get_conn().get_object(Bucket=bucket, Key=key, IfMatch=head.get("ETag"))["Body"]
        with partial.open("wb") as out:
            for chunk in body.iter_chunks(chunk_size=CHUNK):
                out.write(chunk)
                digest.update(chunk)
                written += len(chunk)
        if written != size:
            raise SourceError(f"source {uri}: {written:,} bytes read, the object has {size:,}: the object changed "
                              "while it was read, or the transfer broke; trigger again")
        sha = digest.hexdigest()
        _check_digest(uri, sha, expected_sha256)
        partial.replace(local)
    finally:
        partial.unlink(missing_ok=True)
    meta.write_text(json.dumps({"etag": etag, "size": size, "sha256": sha, "uri": uri}))
    _forget_old_runs(_cache_root(), run_dir)
    return FetchedSource(local, uri, size, sha, etag, True, time.monotonic() - started)


def _check_digest(uri: str, sha: str, expected: str | None) -> None:
    if expected and sha != expected.lower():
        raise SourceError(f"source {uri} has SHA-256 {sha}, the run expects {expected.lower()}: it is not the "
                          "file that was meant", what_to_do=(
                              "nothing was written. Upload the file the run means to that key, or trigger again "
                              "with the source_sha256 of the file that is there (sha256sum of the platform's copy)"))
