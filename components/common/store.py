"""Artifact store: one interface, a local-folder backend and an S3 (MinIO) backend."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class NotFoundError(KeyError):
    """The key does not exist in the store."""


class StoreAccessError(ValueError):
    """The store cannot be used as configured (credentials, endpoint, URI); the message says what to set."""


class ConflictError(RuntimeError):
    """A conditional write lost a race: the object changed since it was read."""


class Store(ABC):
    """Keys are '/'-separated paths such as `runs/<run_id>/<step>/metrics.json`.

    Every write is atomic: a reader sees the old object or the new one, never a part.
    """

    uri: str

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Contents of `key`; raises NotFoundError."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Replace `key` atomically."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether `key` exists."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every key under `prefix` (recursive), sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key` if present."""

    @abstractmethod
    def read_versioned(self, key: str) -> tuple[bytes, str]:
        """Contents and a version tag to pass to `write_if`; raises NotFoundError."""

    @abstractmethod
    def write_if(self, key: str, data: bytes, version: str | None) -> str:
        """Write only if `key` still has `version` (None: only if it does not exist).

        Returns the new version tag; raises ConflictError when another writer got there first.
        """

    def location(self, key: str) -> str:
        """Where `key` lives, as a path or URI that readers outside the store open (a manifest's
        image column, a dataset.path)."""
        return f"{self.uri.rstrip('/')}/{check_key(key)}"

    def upload_file(self, key: str, path: str | Path) -> None:
        """Copy a local file into the store."""
        self.write_bytes(key, Path(path).read_bytes())

    def download_file(self, key: str, path: str | Path) -> Path:
        """Copy `key` to a local file (written atomically) and return its path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(self.read_bytes(key))
        os.replace(tmp, target)
        return target

    @contextlib.contextmanager
    def staged(self, key: str) -> Iterator[Path]:
        """A local path to write `key` to (e.g. by a library); uploaded only if the block succeeds."""
        with tempfile.TemporaryDirectory(prefix="kubeloop-") as tmp:
            path = Path(tmp) / Path(key).name
            yield path
            self.upload_file(key, path)

    def read_json(self, key: str) -> Any:
        """Parse `key` as JSON."""
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, value: Any) -> None:
        """Write `value` as indented JSON."""
        self.write_bytes(key, json.dumps(value, indent=2, sort_keys=True, default=str).encode())

    def write_text(self, key: str, text: str) -> None:
        """Write UTF-8 text."""
        self.write_bytes(key, text.encode("utf-8"))

    def read_text(self, key: str) -> str:
        """Read UTF-8 text."""
        return self.read_bytes(key).decode("utf-8")

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """A local file holding `key`, removed afterwards (for libraries that need a path)."""
        with tempfile.TemporaryDirectory(prefix="kubeloop-") as tmp:
            yield self.download_file(key, Path(tmp) / Path(key).name)


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid store key {key!r}: use relative paths like 'runs/<id>/x.json'")
    return key


class LocalStore(Store):
    """A folder on disk: writes go to a temporary file, then os.replace (atomic on POSIX)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.uri = str(self.root)

    def __repr__(self) -> str:
        return f"LocalStore({self.uri!r})"

    def path(self, key: str) -> Path:
        """Filesystem path of `key` (local backend only)."""
        return self.root / check_key(key)

    def location(self, key: str) -> str:
        return str(self.path(key))

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError(f"{key} not found in {self.uri}") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def upload_file(self, key: str, path: str | Path) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        base = self.root / prefix if prefix else self.root
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        keys = [
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        ]
        return sorted(keys)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    @staticmethod
    def _version(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        data = self.read_bytes(key)
        return data, self._version(data)

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        # One lock file per key, outside the key's folder so listings stay clean.
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(exist_ok=True)
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        with open(lock_dir / name, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def write_if(self, key: str, data: bytes, version: str | None) -> str:
        with self._lock(key):
            try:
                current: str | None = self.read_versioned(key)[1]
            except NotFoundError:
                current = None
            if current != version:
                raise ConflictError(f"{key} changed since it was read (expected {version}, found {current})")
            self.write_bytes(key, data)
        return self._version(data)


def open_store(uri: str) -> Store:
    """A store for `uri`: `s3://bucket/prefix` or a local folder path."""
    if uri.startswith("s3://"):
        from components.common.s3store import S3Store

        return S3Store.from_uri(uri)
    if "://" in uri:
        raise StoreAccessError(f"unsupported store URI {uri!r}: use a folder path or s3://bucket/prefix")
    return LocalStore(uri)
