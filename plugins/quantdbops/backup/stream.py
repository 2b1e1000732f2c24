"""A byte stream into one S3 object, hashed on the way: how a dump reaches the bucket without a local file.

``pg_dump``'s stdout is cut into parts of ``part_size`` bytes, each uploaded as a part of one multipart upload
while the next is read (at most ``in_flight`` parts uploading at once), its SHA-256 computed over the stream in
order. A part is held in memory until S3 accepted it, so a transient error of a part is retried with the same
bytes (``store.with_retries``): memory stays bounded by ``(in_flight + 1) x part_size`` whatever the database
size. Anything that fails aborts the multipart upload, so no partial object is ever left visible. Server-side
encryption (``Encryption``) is asked for when the upload is created and checked on the finished object.

The other way, an object is read back in chunks into a file or a hash (``download``), checking its size and
SHA-256 against what the manifest says.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO

from quantdbops.backup import store

log = logging.getLogger(__name__)
MB = 1024 * 1024
MIN_PART = 5 * MB  # S3's smallest part (but the last)
MAX_PARTS = 10_000  # S3's most parts of one upload
DEFAULT_PART = 16 * MB
READ_CHUNK = 1 * MB


@dataclass(frozen=True)
class Encryption:
    """Server-side encryption of the objects a backup writes: ``AES256`` (S3-managed keys), ``aws:kms`` (with
    ``kms_key_id``, else the account's default KMS key) or None (the bucket's default only)."""

    algorithm: str | None = "AES256"
    kms_key_id: str | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in (None, "AES256", "aws:kms"):
            raise ValueError(f"server-side encryption must be AES256, aws:kms or none, not {self.algorithm!r}")
        if self.kms_key_id and self.algorithm != "aws:kms":
            raise ValueError("a KMS key id needs server-side encryption aws:kms")

    def request_args(self) -> dict[str, str]:
        """The arguments that ask S3 for it when an object is written."""
        args = {"ServerSideEncryption": self.algorithm} if self.algorithm else {}
        if self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args

    def check(self, head: dict[str, Any], what: str) -> dict[str, str | None]:
        """What the stored object says about its encryption; refuse an object stored without what was asked."""
        got = {"algorithm": head.get("ServerSideEncryption"), "kms_key_id": head.get("SSEKMSKeyId")}
        if self.algorithm and got["algorithm"] != self.algorithm:
            raise store.BackupStoreError(f"{what} is stored with server-side encryption {got['algorithm']!r}, "
                                         f"not {self.algorithm!r} as asked: check the bucket's policy and endpoint")
        if self.kms_key_id and got["kms_key_id"] and not str(got["kms_key_id"]).endswith(self.kms_key_id):
            raise store.BackupStoreError(f"{what} is encrypted with KMS key {got['kms_key_id']}, not "
                                         f"{self.kms_key_id}")
        return got

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


def part_size_for(expected_bytes: int, minimum: int = DEFAULT_PART) -> int:
    """A part size that keeps an upload of about ``expected_bytes`` (plus a margin) under S3's 10,000 parts."""
    needed = int(expected_bytes * 1.5) // (MAX_PARTS - 100) + 1
    return max(minimum, MIN_PART, -(-needed // MB) * MB)


@dataclass(frozen=True)
class Uploaded:
    """An object written from a stream: its key, bytes, SHA-256, parts, encryption, and how long it took."""

    bucket: str
    key: str
    size_bytes: int
    sha256: str
    parts: int
    seconds: float
    encryption: dict[str, str | None]
    etag: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_part(read: Callable[[int], bytes], size: int) -> bytes:
    """Up to ``size`` bytes of the stream (a pipe returns what it has: read until the part is full or EOF)."""
    chunks, got = [], 0
    while got < size:
        chunk = read(min(READ_CHUNK, size - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def upload_stream(hook: Any, bucket: str, key: str, read: Callable[[int], bytes], *, encryption: Encryption,
                  part_size: int = DEFAULT_PART, in_flight: int = 2, policy: store.RetryPolicy = store.DEFAULT_RETRY,
                  tee: BinaryIO | None = None, finish: Callable[[], Any] | None = None,
                  say: Callable[..., None] = log.info) -> tuple[Uploaded, Any]:
    """Everything ``read`` yields until EOF, as the object ``key`` (see the module's docstring), and what
    ``finish`` returned. ``finish`` runs after the last byte was read and before the upload is completed: the
    writer's verdict (``pg_dump``'s exit status); if it raises, the upload is aborted and no object appears.
    ``tee``: a file that receives the same bytes (a local copy kept by choice, never read by another task)."""
    client = hook.get_conn()
    started = time.perf_counter()
    where = {"bucket": bucket, "key": key, "hook": hook}
    created = store.with_retries(f"start of the upload of {key}", lambda: client.create_multipart_upload(
        Bucket=bucket, Key=key, **encryption.request_args()), policy, say, **where)
    upload_id = created["UploadId"]
    digest = hashlib.sha256()
    size = 0
    done: list[dict[str, Any]] = []
    slots = threading.BoundedSemaphore(in_flight)
    futures: list[Future] = []

    def send(number: int, body: bytes) -> dict[str, Any]:
        try:
            answer = store.with_retries(f"part {number} of {key}", lambda: client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body), policy, say, **where)
            return {"PartNumber": number, "ETag": answer["ETag"]}
        finally:
            slots.release()

    try:
        with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="s3-part") as pool:
            number = 0
            while True:
                body = _read_part(read, part_size)
                if not body and number:
                    break
                number += 1
                digest.update(body)
                size += len(body)
                if tee is not None:
                    tee.write(body)
                slots.acquire()
                futures.append(pool.submit(send, number, body))
                failed = next((f for f in futures if f.done() and f.exception()), None)
                if failed is not None:
                    failed.result()  # raises: the upload is aborted below
                if len(body) < part_size:
                    break
            done = [f.result() for f in futures]
        verdict = finish() if finish is not None else None
        answer = store.with_retries(f"completion of {key}", lambda: client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}), policy, say, **where)
    except BaseException:
        for f in futures:
            f.cancel()
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception as exc:  # the original failure is what matters; an orphan upload expires by lifecycle
            log.warning("could not abort the multipart upload %s of %s: %s", upload_id, key, exc)
        raise
    head = store.with_retries(f"read-back of {key}", lambda: client.head_object(Bucket=bucket, Key=key),
                              policy, say, **where)
    if int(head["ContentLength"]) != size:
        raise store.BackupStoreError(f"s3://{bucket}/{key} holds {int(head['ContentLength']):,} bytes, "
                                     f"{size:,} were sent")
    return Uploaded(bucket, key, size, digest.hexdigest(), len(done), round(time.perf_counter() - started, 3),
                    encryption.check(head, f"s3://{bucket}/{key}"),
                    str(answer.get("ETag", head.get("ETag")))), verdict


class ObjectMismatch(store.BackupStoreError):
    """An object is not the bytes its manifest describes: corrupt, truncated or replaced (no retry helps)."""


@dataclass(frozen=True)
class Downloaded:
    size_bytes: int
    sha256: str
    seconds: float


def download(hook: Any, bucket: str, key: str, out: BinaryIO | None, *, expect_size: int | None = None,
             expect_sha256: str | None = None, policy: store.RetryPolicy = store.DEFAULT_RETRY,
             say: Callable[..., None] = log.info) -> Downloaded:
    """The object read in chunks into ``out`` (None: only hashed); ``BackupStoreError`` when its size or SHA-256
    is not what was expected (the caller decides what a mismatch means)."""
    client = hook.get_conn()
    started = time.perf_counter()

    def read_all() -> tuple[int, str]:
        if out is not None:
            out.seek(0)
            out.truncate()
        digest, size = hashlib.sha256(), 0
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(chunk_size=READ_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if out is not None:
                out.write(chunk)
        return size, digest.hexdigest()

    size, sha = store.with_retries(f"download of {key}", read_all, policy, say, bucket=bucket, key=key, hook=hook)
    if out is not None:
        out.flush()
    if (expect_size is not None and size != expect_size) or (expect_sha256 and sha != expect_sha256):
        raise ObjectMismatch(f"s3://{bucket}/{key}: {size:,} bytes with sha256 {sha}, the manifest says "
                             f"{expect_size:,} bytes with sha256 {expect_sha256}")
    return Downloaded(size, sha, round(time.perf_counter() - started, 3))
