"""S3-protocol backend of the artifact store (MinIO on the cluster), through the minio SDK."""

from __future__ import annotations

import io
import os
from pathlib import Path
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import S3Error

from components.common.store import ConflictError, NotFoundError, Store, StoreAccessError, check_key

ENDPOINT_VARS = ("KUBELOOP_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}
MISSING_CODES = {"NoSuchKey", "NoSuchObject"}


def _endpoint() -> tuple[str, bool]:
    for var in ENDPOINT_VARS:
        value = os.environ.get(var)
        if value:
            parts = urlsplit(value if "://" in value else f"https://{value}")
            return parts.netloc, parts.scheme == "https"
    return "s3.amazonaws.com", True


class S3Store(Store):
    """`s3://bucket/prefix`. Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    (never logged); the endpoint from KUBELOOP_S3_ENDPOINT (e.g. http://minio:9000).

    A PUT becomes visible only once complete, so writes are atomic; `write_if` uses S3
    conditional writes (If-Match / If-None-Match), which MinIO and AWS S3 honour.
    """

    def __init__(self, bucket: str, prefix: str, client: Minio) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r})"

    @classmethod
    def from_uri(cls, uri: str) -> S3Store:
        """Build from `s3://bucket/prefix` and the environment; creates the bucket if missing."""
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc:
            raise StoreAccessError(f"store URI {uri!r} must look like s3://bucket/prefix")
        access = os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not access or not secret:
            raise StoreAccessError(
                f"store {uri} needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(and KUBELOOP_S3_ENDPOINT for MinIO)"
            )
        endpoint, secure = _endpoint()
        client = Minio(
            endpoint,
            access_key=access,
            secret_key=secret,
            secure=secure,
            region=os.environ.get("AWS_REGION", "us-east-1"),
        )
        where = f"{'https' if secure else 'http'}://{endpoint}"
        try:
            if not client.bucket_exists(parts.netloc):
                client.make_bucket(parts.netloc)
        except S3Error as exc:
            # The first request is where wrong keys or a missing right show: say so, not a traceback.
            raise StoreAccessError(
                f"store {uri}: the S3 server at {where} refused the request ({exc.code}: {exc.message}); "
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that these keys may use "
                f"the bucket {parts.netloc!r}"
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise StoreAccessError(
                f"store {uri}: cannot reach the S3 server at {where} ({reason}); "
                f"set KUBELOOP_S3_ENDPOINT to where it listens"
            ) from None
        return cls(parts.netloc, parts.path, client)

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _get(self, key: str) -> tuple[bytes, str]:
        try:
            response = self.client.get_object(self.bucket, self._name(key))
        except S3Error as exc:
            if exc.code in MISSING_CODES:
                raise NotFoundError(f"{key} not found in {self.uri}") from None
            raise
        try:
            return response.read(), response.headers.get("etag", "").strip('"')
        finally:
            response.close()
            response.release_conn()

    def read_bytes(self, key: str) -> bytes:
        return self._get(key)[0]

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(self.bucket, self._name(key), io.BytesIO(data), len(data))

    def upload_file(self, key: str, path: str | Path) -> None:
        self.client.fput_object(self.bucket, self._name(key), str(path))

    def exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, self._name(key))
        except S3Error as exc:
            if exc.code in MISSING_CODES:
                return False
            raise
        return True

    def list(self, prefix: str = "") -> list[str]:
        full = self._name(prefix) if prefix else self.prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        objects = self.client.list_objects(self.bucket, prefix=full, recursive=True)
        keys = [o.object_name[strip:] for o in objects if o.object_name]
        if prefix and not prefix.endswith("/"):
            keys = [k for k in keys if k == prefix or k.startswith(prefix + "/")]
        return sorted(keys)

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, self._name(key))

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        return self._get(key)

    def write_if(self, key: str, data: bytes, version: str | None) -> str:
        condition = {"If-None-Match": "*"} if version is None else {"If-Match": f'"{version}"'}
        try:
            # The public put_object takes no conditional headers; _put_object sends them as-is.
            result = self.client._put_object(
                self.bucket,
                self._name(key),
                data,
                headers=condition,  # type: ignore[arg-type]
            )
        except S3Error as exc:
            if exc.code in CONFLICT_CODES:
                raise ConflictError(f"{key} changed since it was read") from None
            raise
        return result.etag or ""
