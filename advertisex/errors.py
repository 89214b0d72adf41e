"""One error hierarchy. Each class says whether retrying the same thing can help.

Messages are written for the person who hit the error: what was wrong, where, and
what to do about it. Each layer maps the family in one place: the CLI prints
``str(error)`` and exits non-zero (``advertisex.cli.app.main``); the HTTP layer answers
``http_status`` with ``{"code", "message"}`` (``advertisex.collector.responses.error_response``,
and Firehose's own shape in ``advertisex.collector.firehose``). Driver errors never
escape the lake untranslated: a busy or unreachable catalog database is a
:class:`CatalogUnavailableError`.
"""

from __future__ import annotations

from typing import Any


class AdvertiseXError(Exception):
    """Base class. ``retryable`` tells callers whether trying again may succeed."""

    code = "error"
    retryable = False
    http_status = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  → {self.hint}" if self.hint else self.message


class UserInputError(AdvertiseXError):
    """The request, file, argument or SQL is wrong; the same input will fail again."""

    code = "bad_input"
    http_status = 400


class FramingError(UserInputError):
    """Bytes that cannot be split into records (a request body, a Firehose record):
    ``code`` says what (``json_invalid``, ``empty_body`` …), the message says where."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = status

    @property
    def status(self) -> int:
        return self.http_status

    def __reduce__(self) -> tuple[Any, ...]:  # raised in a decoder worker, re-raised here
        return (_framing_error, (self.code, self.message, self.http_status))


def _framing_error(code: str, message: str, status: int) -> FramingError:
    return FramingError(code, message, status=status)


class LakeMovedError(UserInputError):
    """The data directory holds a lake moved from elsewhere: Iceberg records where every
    table's files are, and they are no longer there."""

    code = "lake_moved"
    http_status = 409


class CatalogMissingError(UserInputError):
    """The data directory's warehouse holds tables but its catalog database is gone: the
    tables, and which landing files were processed, are recorded there."""

    code = "catalog_missing"
    http_status = 409


class LakeCopiedError(UserInputError):
    """The data directory holds a copy of a lake that is still where it was made: its
    tables are recorded there, so writing through the copy would change the original's
    folders. The copy is read-only."""

    code = "lake_copied"
    http_status = 409


class ConfigError(UserInputError):
    code = "bad_config"


class ReadOnlyQueryError(UserInputError):
    code = "read_only"


class SeveralStatementsError(UserInputError):
    """SQL of several statements where one answer is given (the read API, the console's SQL
    page, ``ax.query``): refused before any runs, since the answer was the last statement's
    alone and the caller could not tell."""

    code = "several_statements"


class QueryTimeoutError(UserInputError):
    """A query ran past its time limit and was stopped."""

    code = "query_timeout"


class QueryTooLargeError(UserInputError):
    """A query needed more memory (and spill to disk) than it may use, and was stopped."""

    code = "query_too_large"


class QueryFailedError(AdvertiseXError):
    """A console or API query's worker failed with an error no other class tells (a bug, not
    the query's fault): its type and message; the server's log holds its traceback."""

    code = "query_failed"


class QueryWorkerFailedError(AdvertiseXError):
    """A console or API query's worker process died before it answered (a signal other than
    its memory or time limit's, an exit): not the query's size; the same query may be
    answered by the next worker. The server's log says how the worker ended."""

    code = "query_worker_failed"


class NotFoundError(UserInputError):
    code = "not_found"
    http_status = 404


class TransientError(AdvertiseXError):
    """I/O hiccup, a catalog commit that lost a race, a full queue: retry with backoff."""

    code = "unavailable"
    retryable = True
    http_status = 503


class QueriesBusyError(TransientError):
    """As many console or API queries as may run at once are running."""

    code = "queries_busy"


class CommitConflictError(TransientError):
    code = "commit_conflict"


class CatalogUnavailableError(TransientError):
    """The catalog database is locked by another writer or cannot be reached (the driver's
    operational errors, translated in ``lake.catalog``)."""

    code = "catalog_unavailable"


class StorageError(TransientError):
    """Files could not be written or read: a full disk, a lost mount, an object store that
    refuses. Nothing half-done is published; the same command resumes once it is fixed."""

    code = "storage_error"


class LakeDamagedError(AdvertiseXError):
    """Data files the tables reference are missing or damaged (``lake.damage``): reads of
    them fail until their rows are rebuilt or restored, as the hint says. Not retried by a
    command (the same read fails again at once), but retryable: a long-running processor
    keeps trying, and intake goes on, while someone does what the hint says."""

    code = "lake_damaged"
    retryable = True
    http_status = 503


class BatchCancelled(AdvertiseXError):
    """A batch given up before its commit because the processor was told to stop: nothing
    of it was committed, and the next run makes the same batch again."""

    code = "cancelled"


class LakeError(AdvertiseXError):
    """The lake was used in a way it does not support (a bug in the caller, not the data)."""

    code = "lake_error"


class MartOverflowError(AdvertiseXError):
    """A mart's sum passed what its 64-bit column holds: the batches before it are
    committed; the marts stay where they were until the amounts behind it are fixed."""

    code = "mart_overflow"


class AccountingError(AdvertiseXError):
    """A batch's accounting does not add up (a bug in an engine): nothing was committed."""

    code = "accounting"


class ProcessorBusyError(TransientError):
    """Another processor holds the lake (``runners.lock``): one runs at a time."""

    code = "processor_busy"


class MaintenanceBusyError(TransientError):
    """Another ``maintain`` holds the lake's maintenance lock (``runners.lock``): two at
    once would each skip what the other changed."""

    code = "maintenance_busy"


class ErasureBusyError(TransientError):
    """``forget`` and a landing ``replay`` hold the lake's erasure lock (``runners.lock``):
    a replay's batches read the landing records an erasure removes."""

    code = "erasure_busy"


class SparkUnavailableError(TransientError):
    """The Spark master does not answer, or Spark failed under the processor."""

    code = "spark_unavailable"
