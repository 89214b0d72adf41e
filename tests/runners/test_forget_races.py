"""Writers that read a user's rows before ``forget`` erased them, and commit after it:
the marts' refresh and rebuild, and ``replay``. Each race is forced, one step held
until the erasure is done."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from advertisex import synth
from advertisex.util.timeutil import parse_date

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _lake(tmp_path: Path, **overrides: Any) -> str:
    """A processed lake under ``tmp_path / "data"`` (its marts built, unless ``overrides``
    say otherwise); the user with the most clicks."""
    import advertisex

    source = tmp_path / "input"
    synth.generate(source, events=1500, seed=4, start=parse_date("2026-11-05"))
    ax = advertisex.open(data_dir=tmp_path / "data", **overrides)
    ax.ingest([str(source / s) for s in ("impressions", "clicks", "bids")])
    ax.process()
    user = (
        ax.query("select user_id from curated.clicks group by 1 order by count(*) desc, 1")
        .column("user_id")[0]
        .as_py()
    )
    return user


class _Held:
    """``owner.method`` held, in ``thread`` only (not the erasure's, nor the test's), until
    ``go`` is set; ``reached`` once it is."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: Any, method: str) -> None:
        self.reached, self.go = threading.Event(), threading.Event()
        self.thread: threading.Thread | None = None
        original = getattr(owner, method)

        def held(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is self.thread and not self.go.is_set():
                self.reached.set()
                assert self.go.wait(120)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, method, held)

    def start(self, target: Any, errors: list[BaseException]) -> None:
        """Run ``target`` in the held thread until it reaches the held step."""

        def run() -> None:
            try:
                target()
            except BaseException as error:  # told by the test
                errors.append(error)

        self.thread = threading.Thread(target=run)
        self.thread.start()
        while self.thread.is_alive() and not self.reached.wait(0.1):
            pass
        assert self.reached.is_set(), errors

    def release(self) -> None:
        self.go.set()
        assert self.thread is not None
        self.thread.join(120)


MARTS = [
    "marts.attributed_clicks",
    "marts.attributed_conversions",
    "marts.campaign_hourly",
    "marts.campaign_daily",
]


def _marts(ax: Any) -> dict[str, list[str]]:
    return {name: sorted(map(repr, ax.lake.read(name).to_pylist())) for name in MARTS}


def _without_the_user(data: Path, user: str) -> None:
    """No mart counts ``user``: the marts equal a rebuild from the (erased) curated tables,
    and no row names them."""
    import advertisex

    ax = advertisex.open(data_dir=data)
    found = ax.query(
        f"select (select count(*) from marts.attributed_clicks where user_id = '{user}') "
        f"+ (select count(*) from marts.attributed_conversions where user_id = '{user}') n"
    )
    assert found.column("n")[0].as_py() == 0
    kept = _marts(ax)
    ax.refresh_marts(rebuild=True)
    assert _marts(advertisex.open(data_dir=data)) == kept


@pytest.mark.parametrize("rebuild", [True, False])
def test_a_marts_refresh_that_read_the_user_before_the_erasure_commits_without_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rebuild: bool
) -> None:
    """``report refresh`` (an update of a later day's rows, or ``--rebuild``) computed the
    marts from the curated rows before the erasure and commits after it: its commit lost
    the race to the erasure's (both write ``marts.state``) and was done again."""
    import advertisex

    user = _lake(tmp_path)
    if not rebuild:  # a later day processed with the marts left behind: the update's work
        later = tmp_path / "later"
        synth.generate(later, events=1500, seed=5, start=parse_date("2026-11-06"))
        behind = advertisex.open(data_dir=tmp_path / "data", correlation={"update_marts": False})
        behind.ingest([str(later / s) for s in ("impressions", "clicks", "bids")])
        behind.process()
    _forget_while_the_marts_refresh_waits_at_its_commit(tmp_path, monkeypatch, user, rebuild)


def test_the_marts_first_build_that_read_the_user_before_the_erasure_commits_without_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marts' first build (``report refresh`` of a lake processed with the marts off,
    or a new lake's first ``process``) read the user's rows, ``forget`` erased them — no
    marts to update yet — and the build committed them into every mart after it: the
    attributed clicks named the user, the rollups counted them. Its commit now requires
    ``ops.erasures`` as it was before it read, and is done again on the erased tables."""

    user = _lake(tmp_path, correlation={"update_marts": False})
    _forget_while_the_marts_refresh_waits_at_its_commit(tmp_path, monkeypatch, user, True)


def _forget_while_the_marts_refresh_waits_at_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user: str, rebuild: bool
) -> None:
    """``report refresh`` (``--rebuild``) held at its commit while ``forget`` erases
    ``user``; then the refresh goes on: the lake holds nothing of the user."""
    import advertisex
    from advertisex.marts.iceberg import IcebergMarts

    held, errors = _Held(monkeypatch, IcebergMarts, "replace"), []
    refreshing = advertisex.open(data_dir=tmp_path / "data")
    held.start(lambda: refreshing.refresh_marts(rebuild=rebuild), errors)
    assert advertisex.open(data_dir=tmp_path / "data").forget([user]).found == {user}
    held.release()
    assert not errors, errors
    _without_the_user(tmp_path / "data", user)


def test_an_erasure_planned_before_the_marts_first_build_erases_them_from_it_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other order: ``forget`` planned with no marts built, the first build committed
    (with the user) before the erasure did, and the erasure updated no mart: the rows it
    looked for again went, the rollups kept counting the user. The erasure's commit now
    requires ``marts.state`` as it was when it planned, and plans again."""
    import advertisex
    from advertisex.lake import erasure

    user = _lake(tmp_path, correlation={"update_marts": False})
    held, errors, reports = _Held(monkeypatch, erasure, "commit"), [], []
    erasing = advertisex.open(data_dir=tmp_path / "data")
    held.start(lambda: reports.append(erasing.forget([user])), errors)
    advertisex.open(data_dir=tmp_path / "data").refresh_marts(rebuild=True)
    held.release()
    assert not errors, errors
    assert reports[0].found == {user}
    _without_the_user(tmp_path / "data", user)


def _rows_of(data: Path, user: str) -> int:
    import advertisex

    ax = advertisex.open(data_dir=data, correlation={"update_marts": False})
    return sum(
        ax.query(f"select count(*) n from {name} where user_id = '{user}'")["n"][0].as_py()
        for name in ("curated.impressions", "curated.clicks", "curated.bid_requests")
    )


def test_forget_beside_a_replay_is_refused_before_it_erases_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay had taken its batches' rows out and was processing their landing files
    again when ``forget`` rewrote them: the batch that had read the user's records committed
    their rows after the erasure — ``forget`` waited two minutes for it, then warned, and a
    replay of days outlasts that. ``forget`` is refused while a replay runs now (and a
    replay while ``forget`` runs): one line, nothing erased, and run once it is done."""
    import advertisex
    from advertisex.errors import ErasureBusyError
    from advertisex.lake.tables import Lake
    from advertisex.runners import forget as forget_module

    data = tmp_path / "data"
    user = _lake(tmp_path, correlation={"update_marts": False})
    monkeypatch.setattr(forget_module, "WAIT_FOR_BATCHES", 0.5)  # (the wait it had)
    held, errors = _Held(monkeypatch, Lake, "write_files"), []  # its batch read the files
    replaying = advertisex.open(data_dir=data, correlation={"update_marts": False})
    held.start(replaying.replay, errors)
    landing = sorted(p.read_bytes() for p in (data / "landing").rglob("*") if p.is_file())
    with pytest.raises(ErasureBusyError, match=r"a replay is running on this lake \(pid "):
        advertisex.open(data_dir=data).forget([user])
    assert sorted(p.read_bytes() for p in (data / "landing").rglob("*") if p.is_file()) == landing
    held.release()
    assert not errors, errors
    assert _rows_of(data, user) > 0  # the replay gave back what it took: nothing erased yet

    report = advertisex.open(data_dir=data).forget([user])
    assert report.found == {user} and report.unsettled == 0
    assert _rows_of(data, user) == 0
    assert [p for p in data.rglob("*") if p.is_file() and user.encode() in p.read_bytes()] == []


def test_a_replay_beside_forget_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    import advertisex
    from advertisex.errors import ErasureBusyError
    from advertisex.lake import erasure

    data = tmp_path / "data"
    user = _lake(tmp_path, correlation={"update_marts": False})
    held, errors, reports = _Held(monkeypatch, erasure, "commit"), [], []
    erasing = advertisex.open(data_dir=data)
    held.start(lambda: reports.append(erasing.forget([user])), errors)
    with pytest.raises(ErasureBusyError, match="a forget is running on this lake"):
        advertisex.open(data_dir=data, correlation={"update_marts": False}).replay()
    code, _, err = cli(data, "replay", ADVERTISEX_CORRELATION__UPDATE_MARTS="false")
    assert code == 2 and "Traceback" not in err, err
    assert "error: a forget is running on this lake (pid " in err
    assert "replaying now would bring back rows the erasure removes" in " ".join(err.split())
    code, _, err = cli(data, "forget", "--user-id", "someone-else")
    assert code == 2 and "error: another forget is running on this lake (pid " in err, err
    held.release()
    assert not errors, errors
    assert reports[0].found == {user}
    assert advertisex.open(data_dir=data).replay().batches  # once it is done
    assert _rows_of(data, user) == 0
