"""Where bytes live: a local folder or an object store, behind PyArrow's filesystems.

The landing zone and the warehouse are each named by one location — a folder path,
a ``file://`` URL, or an object-store URL (``s3://bucket/prefix``, ``gs://bucket/…``,
``abfs://container@account.dfs.core.windows.net/…``). :func:`resolve` turns it into
a PyArrow filesystem plus the path inside it; :func:`iceberg_properties` gives
pyiceberg's FileIO the same S3 settings, so table data and landing segments are read
with one set of credentials. PyArrow's S3 client is the real AWS SDK: an
S3-compatible server (MinIO, Ceph, a test server) only changes ``endpoint_override``.

Credentials: ``scale.s3_*`` settings when given (secrets), else the standard AWS
chain (environment variables, shared profile, instance or pod role).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from advertisex.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

    from advertisex.config import ScaleSettings

_S3 = ("s3", "s3a", "s3n")
_GCS = ("gs", "gcs")
_AZURE = ("abfs", "abfss", "az")
REMOTE_SCHEMES = frozenset((*_S3, *_GCS, *_AZURE))


def scheme(location: str) -> str:
    """The URL scheme of ``location`` ('' for a plain path)."""
    head, sep, _ = location.partition("://")
    return head.lower() if sep else ""


def is_remote(location: str) -> bool:
    """True for object-store URLs, False for folders and ``file://`` URLs."""
    return scheme(location) in REMOTE_SCHEMES


def local_path(location: str) -> str | None:
    """The path of ``location`` on this machine's disks (a ``file://`` URL or a path,
    relative ones included); None for an object store's, or for no location.

    >>> local_path("file:///data/wh"), local_path("wh/t"), local_path("s3://bucket/wh")
    ('/data/wh', 'wh/t', None)
    """
    kind = scheme(location)
    if kind == "file":
        return location.removeprefix("file://")
    return location if kind == "" and location else None


def start_writeback(path: str) -> None:
    """Ask the kernel to start writing a just-closed local file to the disk now, without
    waiting for it (best effort: an fsync later is what makes it durable, and then finds
    it written)."""
    if not hasattr(os, "posix_fadvise"):
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        start_file_writeback(fd)
    finally:
        os.close(fd)


def start_file_writeback(fd: int) -> None:
    """:func:`start_writeback` of an open file."""
    if not hasattr(os, "posix_fadvise"):
        return
    try:
        # On Linux this starts writeback of the dirty pages and drops only clean ones that
        # are not being written: nothing waits, nothing needed is evicted.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


def make_folders(folder: Path, fsync: bool = True) -> None:
    """``folder`` and its missing parents made, each one made flushed in its parent when
    ``fsync`` (one made meanwhile by another writer too: its maker may not have yet): a
    file's name flushed in a folder that a power cut loses with its own name is lost
    with it, on a file system that does not order directory operations."""
    if folder.is_dir():
        return
    missing = [folder]
    while not missing[-1].parent.is_dir() and missing[-1].parent != missing[-1]:
        missing.append(missing[-1].parent)
    for made in reversed(missing):
        made.mkdir(exist_ok=True)
        if fsync:
            fsync_path(made.parent)


def fsync_path(path: Path | str) -> None:
    """fsync a folder or a file (opened read-only: a file's bytes are flushed through any
    descriptor of it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# fsyncs in flight at once (fsync_all): each mostly waits on the disk's journal.
FSYNCS_AT_ONCE = 8


def fsync_all(paths: Sequence[Path | str]) -> None:
    """fsync each of ``paths`` (:func:`fsync_path`), several at once: fsyncs that wait
    together share the file system's journal commits. 136 index markers and their folders
    took 0.16-0.5 s one after the other, 0.03-0.07 s eight at a time (ext4 on a virtual
    disk). Done when all are; the first failure is raised."""
    if len(paths) <= 2:
        for path in paths:
            fsync_path(path)
        return
    from concurrent.futures import ThreadPoolExecutor

    workers = min(FSYNCS_AT_ONCE, len(paths))
    with ThreadPoolExecutor(workers, thread_name_prefix="adx-fsync") as pool:
        for _ in pool.map(fsync_path, paths):
            pass


def replace_file(filesystem: pafs.FileSystem, path: str, data: bytes | memoryview) -> None:
    """``data`` in place of the file at ``path`` of ``filesystem``, whole: on a local disk
    written beside it, fsync'd, renamed over it and its folder fsync'd — a crash leaves the
    old bytes or the new, never a cut file; an object store's PUT replaces it at once."""
    if filesystem.type_name != "local":
        with filesystem.open_output_stream(path) as out:
            out.write(data)
        return
    replace_local(Path(path), data)


def replace_local(local: Path, data: bytes | memoryview) -> os.stat_result:
    """:func:`replace_file` of a file on this machine's disks (the landing zone's rewrite of
    a segment too): a failed write leaves no hidden copy behind. Returns the new file's
    status as named — of the file written, held open until then, whatever came after."""
    temporary = local.with_name(f".{local.name}{_REWRITE}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.replace(temporary, local)
            written = os.fstat(handle.fileno())  # after the rename, which may move its ctime
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_path(local.parent)
    return written


_REWRITE = ".rewrite"  # the suffix of replace_file's hidden copy


def rewrite_leftover(path: str) -> bool:
    """Whether ``path`` is the hidden copy :func:`replace_file` writes, left by a process
    killed while writing it: a file nobody reads, to delete (a copy of another file's
    records, which an erasure must not leave behind)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name.startswith(".") and name.endswith(_REWRITE)


def join(location: str, *parts: str) -> str:
    """``location`` with ``parts`` appended by ``/`` (URLs and POSIX paths alike)."""
    return "/".join([location.rstrip("/"), *(p.strip("/") for p in parts if p)])


def resolve(location: str, settings: ScaleSettings | None = None) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a folder or object-store URL.

    >>> fs, path = resolve("/tmp/adx/landing")
    >>> type(fs).__name__, path
    ('LocalFileSystem', '/tmp/adx/landing')
    """
    kind = scheme(location)
    if kind in ("", "file"):
        import pyarrow.fs as pafs

        return pafs.LocalFileSystem(), location.removeprefix("file://")
    parts = urlsplit(location)
    if kind in _S3:
        return _s3(_s3_key(settings)), f"{parts.netloc}{parts.path}".rstrip("/")
    if kind in _GCS:
        return _gcs(), f"{parts.netloc}{parts.path}".rstrip("/")
    if kind in _AZURE:  # container@account.dfs.core.windows.net/path
        container, _, host = parts.netloc.partition("@")
        return _azure(host.split(".", 1)[0]), f"{container}{parts.path}".rstrip("/")
    raise ConfigError(
        f"unsupported storage URL {location!r}",
        hint="use a folder, file://, s3://, gs:// or abfs://",
    )


def duckdb_location(con: Any, location: str, settings: ScaleSettings | None = None) -> str:
    """Where DuckDB connection ``con`` finds ``location``.

    A local path as it is. An object-store URL through the PyArrow filesystem
    :func:`resolve` gives (the client and credentials everything else uses), lent to
    DuckDB with fsspec's ``ArrowFSWrapper`` — DuckDB's own httpfs extension would have to
    be downloaded at run time, which this project cannot rely on.
    """
    if not is_remote(location):
        return location.removeprefix("file://")
    from fsspec.implementations.arrow import ArrowFSWrapper

    filesystem, path = resolve(location, settings)
    wrapped = ArrowFSWrapper(filesystem)
    protocol = wrapped.protocol if isinstance(wrapped.protocol, str) else wrapped.protocol[0]
    if not con.filesystem_is_registered(protocol):
        con.register_filesystem(wrapped)
    return f"{protocol}://{path}"


def iceberg_properties(settings: ScaleSettings) -> dict[str, str]:
    """pyiceberg FileIO properties carrying the configured S3 endpoint and credentials."""
    properties = {
        "s3.endpoint": settings.s3_endpoint,
        "s3.region": settings.s3_region,
        "s3.access-key-id": _reveal(settings.s3_access_key_id),
        "s3.secret-access-key": _reveal(settings.s3_secret_access_key),
        "s3.session-token": _reveal(settings.s3_session_token),
    }
    return {k: v for k, v in properties.items() if v}


def _reveal(secret: Any) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def _s3_key(settings: ScaleSettings | None) -> tuple[str | None, ...]:
    if settings is None:
        return (None,) * 5
    return (
        settings.s3_endpoint,
        settings.s3_region,
        _reveal(settings.s3_access_key_id),
        _reveal(settings.s3_secret_access_key),
        _reveal(settings.s3_session_token),
    )


@functools.lru_cache(maxsize=8)
def _s3(key: tuple[str | None, ...]) -> pafs.FileSystem:
    """One S3 client per distinct configuration (clients are thread-safe and costly to make)."""
    import pyarrow.fs as pafs

    endpoint, region, access_key, secret_key, token = key
    options: dict[str, Any] = {}
    if endpoint:
        split = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options["endpoint_override"] = split.netloc
        options["scheme"] = split.scheme
    if region:
        options["region"] = region
    if access_key and secret_key:
        options.update(access_key=access_key, secret_key=secret_key, session_token=token)
    return pafs.S3FileSystem(**options)


@functools.lru_cache(maxsize=2)
def _gcs() -> pafs.FileSystem:
    import pyarrow.fs as pafs

    return pafs.GcsFileSystem()  # application-default credentials


@functools.lru_cache(maxsize=4)
def _azure(account: str) -> pafs.FileSystem:
    import pyarrow.fs as pafs

    return pafs.AzureFileSystem(account_name=account)  # DefaultAzureCredential


def os_reason(error: OSError) -> str:
    """The operating system's words for ``error`` (PyArrow puts the errno in its text)."""
    import os
    import re

    number = error.errno or next(
        (int(m.group(1)) for m in [re.search(r"\[errno (\d+)\]", str(error))] if m), None
    )
    return os.strerror(number) if number else str(error)
