"""``advertisex forget``: erase users from everything AdvertiseX keeps (GDPR art. 17, CCPA).

In this order, so that a crash at any point leaves a state that running ``forget``
again completes:

1. **Landing zone** — every segment (every file moved aside as unreadable, every copy in
   the retention archive) that mentions a user is rewritten in its own format without
   their records (``formats.scrub``); the new content hash is indexed beside the old
   one, so neither version is ingested again. Archived Parquet files too.
2. **Tables, marts and audit, in one transaction** — each curated file holding them is
   rewritten without them (``lake.erasure``); the marts' slices those rows touched are
   recomputed from the curated tables as they will be; ``ops.erasures`` gets one row per
   user and table, naming the user by the SHA-256 of their id only. A batch that raced
   in with more of their rows (it read a segment before step 1) is caught by looking
   again after the commit; so are the landing files that landed after step 1 (the
   collector goes on meanwhile), before each look.
3. **History** — every snapshot before the erasure is expired, whatever its age, and the
   files only those snapshots referenced are deleted: the old data files, and the
   manifests whose column statistics could still hold an id. Unreferenced files that
   hold the users are deleted too, and so is the history of a table whose only trace of
   them is time travel (retention had already removed their rows).

Afterwards no file under the data directory contains the ids. A forgotten user whose
events arrive again later is processed like any new user.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from advertisex.errors import CommitConflictError, TransientError, UserInputError
from advertisex.formats.decode import container_format
from advertisex.formats.scrub import Forgotten, Scrubbed, scrub, scrub_lines
from advertisex.formats.scrubwords import WORDS_VERSION, lines_words_of, word_test, words_of
from advertisex.lake import erasure
from advertisex.lake.history import manifests_read_once
from advertisex.lake.upkeep import existing_tables
from advertisex.landing.summaries import Identity, WordSummaries, kept_at, object_identity
from advertisex.model.contracts import MAX_ID_LENGTH
from advertisex.model.schemas import ERASURES, ERASURES_TABLE, TABLES
from advertisex.util import storage
from advertisex.util.parallel import in_order
from advertisex.util.retry import retrying
from advertisex.util.timeutil import utcnow

if TYPE_CHECKING:
    from advertisex.config import Settings
    from advertisex.lake.tables import Lake
    from advertisex.landing.zone import LandingZone, Segment

LANDING, ARCHIVE = "landing", "archive"
Progress = Callable[[str, int, int], None]
LONGEST_ID = 100_000  # characters; RE2 refuses a pattern of a few MB
WAIT_FOR_BATCHES = 120.0  # seconds forget waits for the batches of files it rewrote pending


@dataclass
class ForgetReport:
    erasure_id: str
    users: int  # ids asked for
    rows: Counter[str] = field(default_factory=Counter)  # table (or "landing") → rows removed
    found: set[str] = field(default_factory=set)  # ids that had any trace
    segments: int = 0  # landing files rewritten
    pending: list[str] = field(default_factory=list)  # rewritten while not yet processed
    unsettled: int = 0  # of those, still pending when forget stopped waiting for them
    snapshots_expired: int = 0
    files_deleted: int = 0
    seconds: float = 0.0

    @property
    def nothing(self) -> bool:
        return not self.found


def user_hash(user_id: str) -> str:
    """How ``ops.erasures`` names a user: the SHA-256 of the id, never the id."""
    return hashlib.sha256(user_id.encode()).hexdigest()


def forget(
    lake: Lake,
    landing: LandingZone,
    ids: Iterable[str],
    progress: Progress | None = None,
    now: datetime | None = None,
) -> ForgetReport:
    """Erase every trace of the users ``ids`` (see the module docstring)."""
    wanted = sorted({i.strip() for i in ids if i and i.strip()})
    if not wanted:
        raise UserInputError("no user id to forget", hint="pass --user-id ID or --from-file FILE")
    longest = max(wanted, key=len)
    if len(longest) > LONGEST_ID:  # past this, the search's regex cannot be compiled
        raise UserInputError(
            f"a user id of {len(longest):,} characters is longer than forget searches for "
            f"(at most {LONGEST_ID:,}; ids in the tables are at most {MAX_ID_LENGTH})",
            hint="check that id (or that --from-file has one id per line); nothing was erased",
        )
    from advertisex.runners.lock import erasure_lock

    lake.check_writable()  # a copy's tables cannot be erased: leave its landing zone whole too
    # Not beside a replay, nor another erasure (runners.lock): refused before any rewrite.
    with erasure_lock(lake.settings.data_dir, "forget"), manifests_read_once():
        return _forget(lake, landing, wanted, progress, now)


def _forget(
    lake: Lake,
    landing: LandingZone,
    wanted: list[str],
    progress: Progress | None,
    now: datetime | None,
) -> ForgetReport:
    started, began = time.perf_counter(), utcnow()
    report = ForgetReport(uuid.uuid4().hex[:12], len(wanted))
    ids = Forgotten(wanted)  # how to find them, worked out once
    audit: Counter[tuple[str, str]] = Counter()
    judged: dict[str, set[int]] = {}  # a CSV segment → its records removed, by position
    listed: set[str] = set()  # landing files already scrubbed

    def done_of(names: list[str]) -> set[str]:
        return lake.done_segments(among=names)

    for user, removed in scrub_landing(
        landing, ids, report, progress, judged, listed, done_of
    ).items():
        audit[(user, LANDING)] += removed
    for user, removed in scrub_archived_segments(lake.settings, ids, report).items():
        audit[(user, f"{ARCHIVE}/{LANDING}")] += removed
    for (table, user), removed in erasure.scrub_archive(lake.settings, ids).items():
        report.rows[f"{ARCHIVE}/{table}"] += removed
        report.found.add(user)
        audit[(user, f"{ARCHIVE}/{table}")] += removed
    audited: set[tuple[str, str]] = set()

    def tables_round(landed: Counter[tuple[str, str]]) -> list[erasure.TableErasure]:
        """The users' rows out of the tables, audited with the landing records ``landed``."""
        found = retrying(
            lambda: _erase_tables(lake, ids, report.erasure_id, landed, now, judged),
            retry_on=(CommitConflictError,),
            what="erasure",
        )
        for plan in found:
            report.rows[plan.table] += plan.rows
            report.found.update(plan.by_user)
            audited.update((user, plan.table) for user in plan.by_user)
        return found

    for _ in range(3):  # again while a batch that raced the landing rewrite brought more
        if progress:
            progress("tables", 0, 1)
        found = tables_round(audit)
        audit.clear()
        if not found:
            break
        # The collector and the processor go on meanwhile: a segment landed after the
        # landing pass may be one whose rows this commit just erased. Its records go too,
        # or the id stays on the disk and a replay of its day brings the rows back.
        for user, removed in scrub_landing(
            landing, ids, report, None, judged, listed, done_of
        ).items():
            audit[(user, LANDING)] += removed
    if audit:  # the last look's landing files, after the tables' last round
        lake.commit_batch({ERASURES_TABLE: _audit_rows(report.erasure_id, audit, now)}, [], {})
    if _settled(lake, report):  # a batch that read them before their rewrite committed since
        found = tables_round(Counter())
        late = scrub_landing(landing, ids, report, None, judged, listed) if found else Counter()
        if late:  # landed meanwhile, as after each round above
            audit = Counter({(user, LANDING): n for user, n in late.items()})
            lake.commit_batch({ERASURES_TABLE: _audit_rows(report.erasure_id, audit, now)}, [], {})
    touched = {table for _, table in audited}
    touched |= _time_travel(lake, ids, report, audited, now)
    if touched:
        _erase_history(lake, touched, ids, report, now or utcnow(), progress)
    report.files_deleted += _strays(lake, ids, report, began)
    report.seconds = time.perf_counter() - started
    return report


def _settled(lake: Lake, report: ForgetReport) -> bool:
    """Wait while a processor runs until the landing files rewritten before they were
    processed are (a batch in flight may have read them before their rewrite, and commit
    the users' rows after the tables' last look); whether any was. ``report.unsettled``
    counts those still pending when the wait ends."""
    from advertisex.runners.lock import processor_running

    if not report.pending:
        return False
    deadline = time.monotonic() + WAIT_FOR_BATCHES  # read now: a test shortens it
    waiting = set(report.pending) - lake.done_segments(among=report.pending)
    while waiting and processor_running(lake.settings.data_dir):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
        waiting -= lake.done_segments(among=sorted(waiting))
    report.unsettled = len(waiting) if processor_running(lake.settings.data_dir) else 0
    return len(waiting) < len(report.pending)


def _time_travel(
    lake: Lake,
    ids: Forgotten,
    report: ForgetReport,
    audited: set[tuple[str, str]],
    now: datetime | None,
) -> set[str]:
    """Tables whose older snapshots still reach the users (all the more those just
    erased); rows found only there are audited as ``<table> (time travel)``."""
    reached: set[str] = set()
    audit: Counter[tuple[str, str]] = Counter()
    for name in (n for n in existing_tables(lake) if erasure.erasable(n)):
        past = erasure.in_history(lake, name, ids)
        if not past:
            continue
        reached.add(name)
        report.found.update(past)
        for user, rows in past.items():
            if (user, name) not in audited:
                audit[(user, f"{name} (time travel)")] += rows
                report.rows[f"{name} (time travel)"] += rows
    if audit:
        lake.commit_batch({ERASURES_TABLE: _audit_rows(report.erasure_id, audit, now)}, [], {})
    return reached


def _audit_rows(erasure_id: str, audit: Counter[tuple[str, str]], now: datetime | None) -> pa.Table:
    at = now or utcnow()
    return pa.Table.from_pylist(
        [
            {"erasure_id": erasure_id, "at": at, "user_hash": user_hash(user), "table": table,
             "rows_removed": count}
            for (user, table), count in sorted(audit.items())
        ],
        schema=ERASURES,
    )  # fmt: skip


def scrub_landing(
    landing: LandingZone,
    ids: Forgotten,
    report: ForgetReport,
    progress: Progress | None,
    judged: dict[str, set[int]] | None = None,
    listed: set[str] | None = None,
    done_of: Callable[[list[str]], set[str]] | None = None,
) -> Counter[str]:
    """Rewrite every landing file that mentions the users; records removed per user.
    ``judged`` is told, for each file whose records were told by their columns (CSV), the
    positions of those removed (``erasure.plan``: its quarantined rows follow them).

    A file whose kept words (``landing.summaries``) prove that scrub's cheap test fails
    for every id is not read: nothing in it would be erased. Each file read without a
    summary, and each file rewritten, leaves one for the next erasure. ``listed`` names the
    files a pass before read: they are skipped, and those read are added. ``done_of`` tells
    which of the rewritten segments are processed; the others are added to
    ``report.pending``."""
    from advertisex.landing.zone import UNREADABLE

    every = [*landing.segments(), *landing.unreadable()]
    files = every if listed is None else [f for f in every if f.name not in listed]
    if listed is not None:
        listed.update(f.name for f in files)
    changed: list[str] = []  # the segments rewritten
    removed: Counter[str] = Counter()
    summaries = landing.summaries(WORDS_VERSION)
    known = summaries.known() if summaries is not None else set()
    may_pass = word_test(ids) if known else None
    found: list[tuple[str, Identity, bytes]] = []
    rewritten: list[str] = []  # those whose old words go (they may be a forgotten id)
    held = 0  # bytes of words in found

    def scrubbed(segment: Segment) -> tuple[Segment, Scrubbed | None, _Words | None]:
        return (segment, *_scrubbed(landing, segment, ids, summaries, known, may_pass))

    # A file on each core (inflating, searching and deflating leave the GIL); rewritten
    # here, one at a time, in their order.
    for done, (segment, result, words) in enumerate(in_order(scrubbed, files), start=1):
        if progress and (done % 50 == 0 or done == len(files)):
            progress("landing", done, len(files))
        if result is not None and result.by_columns and judged is not None:
            judged[segment.name] = result.positions
        identity = words[0] if words is not None else None
        if result is not None and result.removed:
            identity = landing.rewrite_identified(segment, result.data)
            if identity is None or words is None:
                rewritten.append(segment.name)  # its old words may be the forgotten id
        if words is not None and identity is not None and summaries is not None:
            found.append((segment.name, identity, words[1]))  # (replacing the old words)
            held += len(words[1])
            if held > _KEPT_AT_ONCE:  # a month of landing files: not all held to the end
                summaries.update(found)
                found, held = [], 0
        if result is None or not result.removed:
            continue
        changed.append(segment.name)
        report.segments += 1
        report.rows[LANDING] += result.removed
        report.found.update(result.by_id)
        removed.update(result.by_id)
    if summaries is not None:  # (a file rewritten has another identity: twice sure)
        summaries.update(found, rewritten, {segment.name for segment in every})
        summaries.close()
    if done_of is not None and changed:  # those done now were committed before the tables'
        processed = done_of(changed)  # looks, which find their rows; others may be in flight
        report.pending += [
            n for n in changed if n not in processed and not n.startswith(UNREADABLE)
        ]
    return removed


# A file's identity as read (None: rewritten now, its identity is the new file's) and the
# words of its bytes as they are after the erasure.
_Words = tuple["Identity | None", bytes]
_KEPT_AT_ONCE = 64 << 20  # bytes of words held before they are written


def _scrubbed(
    landing: LandingZone | _Archive,
    segment: Segment,
    ids: Forgotten,
    summaries: WordSummaries | None,
    known: set[str],
    may_pass: Callable[[bytes], bool] | None,
) -> tuple[Scrubbed | None, _Words | None]:
    """The segment without the users' records (None: it cannot mention them), and its
    words when it was read without a summary (to keep)."""
    summarized = summaries is not None
    identity = landing.identity(segment) if summarized else None
    kept = False  # a summary of it as it is now is kept
    if summaries is not None and identity is not None and segment.name in known:
        words = summaries.words(segment.name, identity)
        if words is not None:
            if may_pass is not None and not may_pass(words):
                return None, None  # the cheap test cannot pass: not read
            kept = True
    data = landing.read(segment)
    result = _scrub_segment(segment, data, ids)
    if not summarized:
        return result, None
    if result is not None and result.removed:  # the new file's words, kept once written
        words = _words_of(segment, result.data)
        return result, None if words is None else (None, words)
    if kept or identity is None or landing.identity(segment) != identity:
        return result, None  # (changed while read: the bytes read may be no version of it)
    searched = result.searched if result is not None else None
    if result is not None:
        result.searched = None  # (not held until the main thread takes the result)
    words = _words_of(segment, data, searched)
    return result, None if words is None else (identity, words)


def _words_of(segment: Segment, data: bytes, searched: list[bytes] | None = None) -> bytes | None:
    """The words of a segment's bytes as :func:`_scrub_segment` searches them."""
    from advertisex.landing.zone import UNREADABLE

    if segment.name.startswith(UNREADABLE):  # set aside: searched as lines, as it is
        return lines_words_of(data)
    return words_of(data, container_format(segment), searched)


def scrub_archived_segments(
    settings: Settings, ids: Forgotten, report: ForgetReport
) -> Counter[str]:
    """The same for landing segments copied to ``retention.archive`` before retention: a
    file whose kept words rule out every id is not read (``landing.summaries``, kept under
    ``Settings.words_dir``: a local file's identity, an object's ETag)."""
    from advertisex.lake.expiry import listing
    from advertisex.landing.zone import Segment, landing_source

    removed: Counter[str] = Counter()
    if not settings.retention.archive:
        return removed
    location = storage.join(settings.retention.archive, LANDING)
    filesystem, base = storage.resolve(location, settings.scale)
    archive = _Archive(filesystem, base, kept_at(settings.words_dir, location))
    summaries = archive.summaries(WORDS_VERSION)
    known = summaries.known()
    may_pass = word_test(ids) if known else None
    found: list[tuple[str, Identity, bytes]] = []
    rewritten: list[str] = []
    listed: set[str] = set()
    held = 0
    for info in listing(filesystem, base):
        if storage.rewrite_leftover(info.path):  # a killed rewrite's copy: never read, gone
            filesystem.delete_file(info.path)
            continue
        name = info.path[len(base) :].strip("/")
        listed.add(name)
        segment = Segment(landing_source(name), name, info.size)
        result, words = _scrubbed(archive, segment, ids, summaries, known, may_pass)
        if result is None or not result.removed:
            if words is not None and words[0] is not None:
                found.append((name, words[0], words[1]))
                held += len(words[1])
                if held > _KEPT_AT_ONCE:
                    summaries.update(found)
                    found, held = [], 0
            continue
        storage.replace_file(filesystem, info.path, result.data)  # the archive's only copy
        rewritten.append(name)  # read again next time: its old words may be the id
        report.rows[f"{ARCHIVE}/{LANDING}"] += result.removed
        report.found.update(result.by_id)
        removed.update(result.by_id)
    summaries.update(found, rewritten, listed)
    summaries.close()
    return removed


@dataclass
class _Archive:
    """The landing segments of ``retention.archive`` as :func:`_scrubbed` reads them."""

    filesystem: Any
    base: str
    words: Path

    def identity(self, segment: Segment) -> Identity | None:
        return object_identity(self.filesystem, f"{self.base}/{segment.name}")

    def read(self, segment: Segment) -> bytes:
        path = f"{self.base}/{segment.name}"
        with self.filesystem.open_input_stream(path, compression=None) as stream:
            return bytes(stream.readall())  # (as it is, whatever its name's suffix)

    def summaries(self, version: int) -> WordSummaries:
        return WordSummaries(self.words, version)


def _scrub_segment(segment: Segment, data: bytes, ids: Forgotten) -> Scrubbed | None:
    """The segment without the users' records; None when it cannot mention them."""
    from advertisex.landing.zone import UNREADABLE

    if segment.name.startswith(UNREADABLE):
        return scrub_lines(data, ids) if ids.may_be_in(data) else None
    try:
        return scrub(data, container_format(segment), ids)  # the cheap test first
    except MemoryError:
        # Not the file's fault: its lines as they are (deflated blocks) would hide the
        # records it holds, and the erasure would say it erased them.
        raise TransientError(
            f"no memory to read the landing file {segment.name} for the erasure: its records "
            "were not looked at",
            hint="run forget again once more memory is free (what it erased stays erased)",
        ) from None
    except Exception:  # a file its own decoder cannot read: line by line
        return scrub_lines(data, ids)


def _erase_tables(
    lake: Lake,
    ids: Forgotten,
    erasure_id: str,
    landing: Counter[tuple[str, str]],
    now: datetime | None,
    judged: dict[str, set[int]] | None = None,
) -> list[erasure.TableErasure]:
    """One transaction: the users' rows out of every table, the marts recomputed where
    those rows counted, the audit rows in. Returns what was erased (empty: nothing)."""
    from advertisex.marts.iceberg import erase_from_marts, marts_built, rules_for
    from advertisex.model.marts import STATE_TABLE

    # The marts as this plan reads them must be the marts when it commits: a first build
    # committed in between (from the curated rows before this erasure, which updates no
    # marts that were not built) would keep the users. Its commit makes this one retry.
    marts_seen = lake.catalog.location(STATE_TABLE)
    lake.refresh()
    names = [n for n in existing_tables(lake) if erasure.erasable(n)]
    plans = [p for p in (erasure.plan(lake, n, ids, judged) for n in names) if p.files]
    audit = Counter(landing)
    for plan in plans:
        for user, rows in plan.by_user.items():
            audit[(user, plan.table)] += rows
    if not audit:
        return []
    curated = {p.table: p.removed_rows() for p in plans if p.table.startswith("curated.")}
    with_marts = bool(curated) and marts_built(lake)
    rules = rules_for(lake, lake.settings) if with_marts else None
    for name in [ERASURES_TABLE, *(n for n in TABLES if with_marts and n.startswith("marts."))]:
        lake.table(name)  # opened (created if need be) before the transaction
    rows = _audit_rows(erasure_id, audit, now)
    with lake.catalog.atomic([], unchanged={STATE_TABLE: marts_seen}):
        if rules is not None:  # computed first: the curated swaps stay close to the publish
            erase_from_marts(lake, rules, curated)
        for plan in plans:
            if not (with_marts and plan.table.startswith("marts.")):
                erasure.commit(lake, plan, erasure_id)
        lake.table(ERASURES_TABLE).append(rows)
    lake.refresh()
    return plans


def _erase_history(
    lake: Lake,
    touched: set[str],
    ids: Forgotten,
    report: ForgetReport,
    now: datetime,
    progress: Progress | None,
) -> None:
    """Bring the marts' positions past the erasure, then expire every snapshot before it."""
    from advertisex.marts.iceberg import catch_up_marts, marts_built, positions

    settings: Settings = lake.settings
    followed: dict[str, frozenset[int]] = {}
    if marts_built(lake):
        catch_up_marts(lake, settings)  # their positions now come after the erasure
        touched |= {name for name in TABLES if name.startswith("marts.")}
        followed = positions(lake)
    lake.refresh()
    names = sorted(name for name in touched if name in existing_tables(lake))
    for done, name in enumerate(names, start=1):
        if progress:
            progress("history", done, len(names))
        since = min(followed[name]) if name in followed else None
        gone = erasure.erase_history(lake, name, now, since)
        report.snapshots_expired += len(gone.snapshots)
        report.files_deleted += len(gone.files)


def _strays(lake: Lake, ids: Forgotten, report: ForgetReport, began: datetime) -> int:
    """Delete the unreferenced data files of every table that hold the users (a batch whose
    commit failed or was killed, a lost race): maintenance leaves them a day, for a commit
    that may still be in flight, and no snapshot names them — the erasure found nothing in
    the tables and the ids stayed on the disk. A file no live writer can still commit goes:
    any while no processor and no maintenance run holds its lock; else those older than
    the holder's lock, and, once every batch that read the users' landing files before their
    rewrite has committed (``_settled``), those older than this erasure — a batch in flight
    that holds the users read one of those files before the rewrite."""
    from advertisex.runners.lock import LOCK_FILE, MAINTENANCE_LOCK_FILE, held_since

    data_dir = lake.settings.data_dir
    holders = [held_since(data_dir, name) for name in (LOCK_FILE, MAINTENANCE_LOCK_FILE)]
    live = [since for since in holders if since is not None]
    before = min(live) if live else None  # None: every stray file goes
    if before is not None and not report.unsettled:
        before = max(before, began)
    deleted = 0
    for name in (n for n in existing_tables(lake) if erasure.erasable(n)):
        deleted += len(erasure.stray_files(lake, name, ids, lake.settings, before=before))
    return deleted
