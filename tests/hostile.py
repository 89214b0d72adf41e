"""A regression corpus of hostile inputs, shared by every test of a path they could hit.

Query escapes: SQL that tries to read a file outside the lake, write anywhere, change the
sandbox, load code or run more than it says. Every path that runs user SQL — ``ax.query``,
``advertisex query``, an HTTP query endpoint — must refuse each one without leaking the
secret or writing a byte. Use it as::

    places = escape_places(tmp_path, data_dir)
    for sql in escape_queries(places):
        answer = run_my_path(sql)             # must be a refusal (error), never rows
        assert_confined(answer, places)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

SECRET = "s3cr3t-outside-the-lake"

# {secret}: a readable file outside the lake; {outside}: its folder; {target}: a path
# outside the lake that must never be created; {catalog}: the lake's catalog database;
# {lake_file}: a file inside the lake, which must not be overwritten.
ESCAPE_QUERIES: tuple[str, ...] = (
    # writes, including the comment trick that fooled a first-words check
    "explain /* c */ analyze copy (select 42) to '{target}'",
    "EXPLAIN ANALYZE COPY (SELECT 42) TO '{target}'",
    "explain (analyze) copy (select 42) to '{target}'",
    "explain ( /* ) */ analyze ) copy (select 42) to '{target}'",
    "/* select */ copy (select 42) to '{target}'",
    "copy (select 42) to '{target}'",
    "copy (select 42) to '{catalog}' (format csv, use_tmp_file false)",
    "copy (select 42) to '{lake_file}' (format parquet, use_tmp_file false)",
    "export database '{outside}/export'",
    "select 1; copy (select 42) to '{target}'",
    "select 1;copy(select 42)to'{target}'",
    "prepare p as copy (select 42) to '{target}'; execute p",
    "create table t as select 42",
    "create secret s (type s3, key_id 'k', secret 'v')",
    "create persistent secret s (type s3, key_id 'k', secret 'v')",
    "create macro m() as 1",
    "insert into ops.batches select * from ops.batches",
    "drop view curated.impressions",
    "checkpoint",
    "vacuum",
    # reads outside the lake
    "select * from read_text('{secret}')",
    "select content from read_text(['{secret}'])",
    "select * from read_blob('{secret}')",
    "select * from read_csv('{secret}', header = false)",
    "select * from read_csv_auto('{secret}')",
    "select * from read_json('{secret}')",
    "select * from read_parquet('{secret}')",
    "select * from sniff_csv('{secret}')",
    "select * from '{secret}'",
    'select * from "{secret}"',
    "select * from read_text('file://{secret}')",
    "select * from read_text('{outside}/*')",
    "select * from glob('{outside}/*')",
    "select * from glob('/*')",
    "select * from read_text('{lake_file}/../../../../../../../..{secret}')",
    "with x as (select * from read_text('{secret}')) select * from x",
    "select (select content from read_text('{secret}')) as c",
    "select * from query('select * from read_text(''{secret}'')')",
    "select * from query_table('{secret}')",
    "call glob('{outside}/*')",
    "pragma database_list",
    # the sandbox itself, other databases, code
    "set enable_external_access = true; select * from read_text('{secret}')",
    "reset enable_external_access",
    "set allowed_directories = ['/']",
    "set allowed_paths = ['{secret}']",
    "set lock_configuration = false",
    "set temp_directory = '{outside}'",
    "pragma enable_profiling = 'json'",
    "attach '{target}' as x",
    "attach '{catalog}' as c (type sqlite)",
    "attach ':memory:' as m",
    "detach memory",
    "use memory",
    "install httpfs",
    "load httpfs",
    "load '{target}'",
    "force install sqlite from 'http://127.0.0.1:9/'",
    "begin transaction",
)


@dataclass(frozen=True)
class EscapePlaces:
    secret: Path
    target: Path
    catalog: Path
    lake_file: Path
    fingerprints: dict[Path, str]  # lake files that must stay byte for byte as they were

    def fields(self) -> dict[str, str]:
        return {
            "secret": str(self.secret),
            "outside": str(self.secret.parent),
            "target": str(self.target),
            "catalog": str(self.catalog),
            "lake_file": str(self.lake_file),
        }


def escape_places(outside: Path, data_dir: Path) -> EscapePlaces:
    """A secret file in ``outside`` (not in the lake) and the lake files to watch.

    The lake under ``data_dir`` must hold at least one committed data file.
    """
    outside.mkdir(parents=True, exist_ok=True)
    secret = outside / "secret.txt"
    secret.write_text(f"{SECRET}\n")
    catalog = data_dir / "catalog.db"
    lake_file = min((data_dir / "warehouse").rglob("*.parquet"))
    watched = (catalog, lake_file)
    return EscapePlaces(
        secret=secret,
        target=outside / "written.csv",
        catalog=catalog,
        lake_file=lake_file,
        fingerprints={p: _digest(p) for p in watched},
    )


def escape_queries(places: EscapePlaces) -> list[str]:
    fields = places.fields()
    return [sql.format(**fields) for sql in ESCAPE_QUERIES]


def assert_confined(answer: str, places: EscapePlaces) -> None:
    """Nothing leaked into ``answer`` (the text a path returned), nothing written anywhere."""
    assert SECRET not in answer, answer
    assert not places.target.exists(), f"{places.target} was written"
    assert not (places.secret.parent / "export").exists()
    for path, digest in places.fingerprints.items():
        assert _digest(path) == digest, f"{path} changed"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
