"""The CLI starts light: heavy libraries load inside the verbs that need them.

These check imports, not time (timings live in bench/cli.py): a module-level
``import pyarrow`` (or pyiceberg, SQLAlchemy …) creeping back into the CLI's import
path, or a query that opens every table, fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from tests.lake.test_listing import batch_rows

HEAVY = (
    "pyarrow",
    # DuckDB's Python relational API (con.sql, relations: ≈ 340 M instructions to import);
    # a question needs only the compiled engine, _duckdb (util/engine.py).
    "duckdb",
    "pyiceberg",
    "sqlalchemy",
    "polars",
    "pandas",
    "numpy",
    "fastavro",
    # Typer 0.29 coerces parameters with pydantic, the settings are pydantic models: a
    # question needs neither (cli/coercion.py, lazy_settings.py), ≈ 400 M instructions.
    "pydantic",
    "advertisex.config",
    "advertisex.landing.zone",  # ≈ 30 M: the API's ingest and landing load it
)

_PROBE = """
import atexit, json, sys
heavy = {heavy!r}
atexit.register(lambda: sys.stderr.write("LOADED " + json.dumps(sorted(m for m in sys.modules if m in heavy or m.startswith(("advertisex.cli.", "rich")))) + "\\n"))
sys.argv = ["advertisex", *{args!r}]
from advertisex.cli.app import main
main()
"""


def loaded_by(
    args: list[str], data_dir: Path, extra: dict[str, str] | None = None
) -> tuple[set[str], str]:
    """(heavy modules loaded, stdout) by ``advertisex ARGS`` in a fresh interpreter, with
    ``extra`` environment variables."""
    loaded, out = modules_loaded_by(args, data_dir, extra)
    return {m for m in loaded if m in HEAVY}, out


def verbs_loaded_by(args: list[str], data_dir: Path) -> set[str]:
    """The verb modules (``advertisex.cli.query`` …) ``advertisex ARGS`` imported."""
    loaded, _ = modules_loaded_by(args, data_dir)
    return {m.rsplit(".", 1)[1] for m in loaded if m.startswith("advertisex.cli.")} - SHARED


# CLI modules every verb may use: not verbs.
SHARED = {"app", "coercion", "common", "output", "plain", "progress"}


def modules_loaded_by(
    args: list[str], data_dir: Path, extra: dict[str, str] | None = None
) -> tuple[set[str], str]:
    """(heavy and CLI modules loaded, stdout) by ``advertisex ARGS`` in a fresh interpreter."""
    code = _PROBE.format(heavy=HEAVY, args=args)
    env = dict(os.environ, ADVERTISEX_DATA_DIR=str(data_dir), **(extra or {}))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    line = [x for x in result.stderr.splitlines() if x.startswith("LOADED ")][-1]
    return set(json.loads(line.removeprefix("LOADED "))), result.stdout


def test_help_loads_no_heavy_library(tmp_path):
    loaded, out = loaded_by(["--help"], tmp_path)
    assert loaded == set()
    assert "query" in out


@pytest.mark.slow  # a generated day processed in a fresh interpreter
def test_process_with_its_defaults_loads_no_pydantic_coercion_nor_polars(tmp_path, open_lake):
    # The settings are pydantic models, but Typer's parameter adapter (≈ 0.1 s of every run's
    # start) is not built for defaults it would hand back unchanged (cli/coercion.py). Nor
    # is Polars imported (0.2 s, mostly under the GIL) where the compiled helpers hash the
    # keys and payloads: the decoder workers use it, the command itself does not.
    from advertisex import native, synth

    drop, data = tmp_path / "drop", tmp_path / "data"
    synth.generate(drop, events=2000, seed=5, start=date(2026, 11, 20), days=1)
    open_lake(data).ingest([str(drop / s) for s in ("impressions", "clicks", "bids")])
    code = "import sys; sys.argv = ['advertisex', 'process', '--format', 'json']\n"
    code += "from advertisex.cli.app import main\ntry:\n    main()\nfinally:\n"
    code += "    print('ADAPTERS', 'typer._adapters' in sys.modules, file=sys.stderr)\n"
    code += "    print('POLARS', 'polars' in sys.modules, file=sys.stderr)"
    env = dict(os.environ, ADVERTISEX_DATA_DIR=str(data))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert set(json.loads(result.stdout)["tables"]) >= {
        "curated.impressions",
        "curated.clicks",
        "curated.bid_requests",
    }, result.stderr
    assert "ADAPTERS False" in result.stderr, result.stderr
    if native.available():
        assert "POLARS False" in result.stderr, result.stderr


def test_select_1_loads_duckdbs_engine_alone(tmp_path):
    loaded, out = loaded_by(["query", "select 41 + 1 as answer", "--format", "json"], tmp_path)
    assert json.loads(out) == [{"answer": 42}]
    assert loaded == set()


def test_a_verb_loads_its_own_module_alone_and_help_loads_them_all(tmp_path):
    assert verbs_loaded_by(["query", "select 1"], tmp_path) == {"query"}
    assert verbs_loaded_by(["report", "--help"], tmp_path) == {"report"}
    everything = verbs_loaded_by(["--help"], tmp_path)
    assert {"query", "report", "serve", "pipeline", "quarantine"} <= everything


def test_a_query_lists_only_the_tables_it_names_without_pyiceberg(ax, tmp_path):
    ax.lake.table("ops.batches").append(batch_rows(["b1"]))
    loaded, out = loaded_by(
        ["query", "select batch_id from ops.batches", "--format", "json"], ax.settings.data_dir
    )
    assert json.loads(out) == [{"batch_id": "b1"}]
    assert not loaded & {"pyiceberg", "sqlalchemy", "pydantic", "advertisex.config", "duckdb"}


def test_report_campaigns_prints_its_rows_without_arrow_numpy_or_rich(ax, tmp_path):
    import pyarrow as pa

    from advertisex.model.marts import CAMPAIGN_DAILY

    row: dict[str, object] = {f.name: 0 for f in CAMPAIGN_DAILY}
    row |= {"campaign_id": "cmp-1", "day": date(2026, 11, 20), "impressions": 4, "users": None}
    ax.lake.table("marts.campaign_daily").append(pa.Table.from_pylist([row], CAMPAIGN_DAILY))
    for fmt in ("table", "json"):
        loaded, out = loaded_by(["report", "campaigns", "--format", fmt], ax.settings.data_dir)
        assert "cmp-1" in out
        assert not loaded & {"pyarrow", "numpy", "pyiceberg", "sqlalchemy", "pydantic"}, fmt
        assert "duckdb" not in loaded, fmt  # the engine alone: no relational API
        assert "advertisex.config" not in loaded, fmt
    modules, _ = modules_loaded_by(["report", "campaigns"], ax.settings.data_dir)
    assert not any(m.startswith("rich") for m in modules)  # drawn as plain text


def test_a_question_validates_the_sections_it_uses_only(ax, tmp_path):
    """Sections beyond where the data lives are validated when a command reads them: a
    question that reads none answers without pydantic whatever they say; one that reads
    raw.* (the processor's decode limits) refuses them as every other command does."""
    ax.lake.table("ops.batches").append(batch_rows(["b1"]))
    config = tmp_path / "advertisex.toml"
    config.write_text("[monitor]\nlookback_days = 9\n[processor]\nworkers = 3\n")
    extra = {"ADVERTISEX_CONFIG": str(config), "ADVERTISEX_PROCESSOR__WORKERS": "0"}
    for args in (["query", "select 1"], ["report", "campaigns"]):
        loaded, _ = loaded_by(args, ax.settings.data_dir, extra)
        assert not loaded & {"pydantic", "advertisex.config"}, args
    env = dict(os.environ, ADVERTISEX_DATA_DIR=str(ax.settings.data_dir), **extra)
    for args in (["query", "select count(*) from raw.impressions"], ["status"]):
        result = subprocess.run(
            [sys.executable, "-m", "advertisex.cli.app", *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert "processor.workers = 0" in result.stderr


def test_status_on_a_lake_loads_no_pandas(ax, tmp_path):
    # Arrow imports pandas on its first array only to ask whether it was handed one: a
    # quarter of a second of every status, which nothing in it needs.
    ax.lake.table("ops.batches").append(batch_rows(["b1"]))
    loaded, out = loaded_by(["status", "--format", "json"], ax.settings.data_dir)
    assert "ops.batches" in {row["table"] for row in json.loads(out)["lake"]}
    assert "pandas" not in loaded


def test_status_on_a_sqlite_lake_loads_neither_pyiceberg_nor_sqlalchemy(ax, tmp_path):
    # ≈ 0.45 s of a status that took 0.8 s: the ledger, the tables' files and their health
    # are read from the SQLite catalog and the metadata files directly (lake.marks, listing).
    from advertisex.lake.marks import SegmentDone
    from advertisex.lake.upkeep import maintain

    ax.lake.table("ops.batches").append(batch_rows(["b1"]))
    name = "clicks/2026-11-20/07/20261120T070000000000Z-a.csv"
    with ax.lake.catalog.atomic([SegmentDone(name, "clicks", "b1", 3, 300, "2026-11-20T07:00Z")]):
        pass
    maintain(ax.lake)
    for fmt in ("json", "table"):
        loaded, out = loaded_by(["status", "--format", fmt], ax.settings.data_dir)
        assert "ops.batches" in out
        assert not loaded & {"pyiceberg", "sqlalchemy"}, fmt


def test_status_on_a_new_lake_shows_what_it_did_and_makes_nothing(tmp_path):
    # Read through pyiceberg, ops.maintenance was made by status's own read (and the
    # catalog with it): the row is shown as it was, empty, and nothing is made.
    data = tmp_path / "data"
    data.mkdir()
    loaded, out = loaded_by(["status", "--format", "json"], data)
    assert [row["table"] for row in json.loads(out)["lake"]] == ["ops.maintenance"]
    assert not (data / "catalog.db").exists() and not (data / "warehouse").exists()
    assert not loaded & {"pyiceberg", "sqlalchemy"}
