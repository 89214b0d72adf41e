"""A plain ``pip install .`` is enough: what the package imports is what pyproject.toml declares.

Two checks. Every third-party module imported anywhere under advertisex/ belongs to a declared
distribution (a required one, or one of the extra that names it). And the wheel of the package,
installed without extras into a clean virtual environment that sees only the declared
distributions and what they depend on, runs ingest → process → query on the AWS reference samples.

The clean environment is built from this environment's installed distributions (each one's files,
linked one by one, read from its RECORD) instead of a download: the same proof in seconds, with
no network. ``make install-check`` runs the same test with ``ADVERTISEX_INSTALL_FROM_INDEX=1``:
a real ``pip install .`` that resolves and downloads from the package index, as a user's would.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import inspect
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def closure(requirements: list[str]) -> set[str]:
    """Canonical names of the distributions ``requirements`` pull in, transitively, as installed
    here (markers evaluated for this interpreter and the extras asked for)."""
    found: set[str] = set()
    pending = [Requirement(r) for r in requirements]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = sorted(requirement.extras)
        key = f"{name}[{','.join(extras)}]"
        if key in found:
            continue
        found.add(key)
        found.add(name)
        for line in metadata.distribution(name).requires or []:
            child = Requirement(line)
            environments = [{"extra": e} for e in extras] or [{"extra": ""}]
            if child.marker is None or any(child.marker.evaluate(env) for env in environments):
                pending.append(child)
    return {n for n in found if "[" not in n}


def third_party_imports() -> dict[str, set[str]]:
    """Top-level module → files of advertisex/ importing it, for modules outside the stdlib."""
    modules: dict[str, set[str]] = {}
    for path in (ROOT / "advertisex").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top != "advertisex" and top not in sys.stdlib_module_names:
                    modules.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return modules


def providers_of_modules() -> dict[str, list[str]]:
    """``packages_distributions()``, and a top-level extension module under its own name
    (Python 3.11 files ``_duckdb.cpython-311-x86_64-linux-gnu.so`` under that whole name)."""
    providers = {name: list(dists) for name, dists in metadata.packages_distributions().items()}
    for dist in metadata.distributions():
        for file in dist.files or ():
            name = inspect.getmodulename(file.name) if len(file.parts) == 1 else None
            if name and dist.metadata["Name"] not in providers.setdefault(name, []):
                providers[name].append(dist.metadata["Name"])
    return providers


def test_every_imported_library_is_declared():
    required = closure(PROJECT["dependencies"])
    optional = {
        extra: closure(requirements)
        for extra, requirements in PROJECT["optional-dependencies"].items()
        if extra != "dev"
    }
    providers = providers_of_modules()
    undeclared = {}
    for module, files in third_party_imports().items():
        dists = {canonicalize_name(d) for d in providers.get(module, [module])}
        if dists & required:
            continue
        # A module of an extra is fine only in the code that needs that extra (imported lazily).
        if any(dists & names for names in optional.values()):
            continue
        undeclared[module] = sorted(files)
    assert not undeclared, f"imported but not declared in [project] dependencies: {undeclared}"


def copy_sources(where: Path) -> Path:
    """What an sdist holds, copied, so that building never writes into the checkout."""
    tree = where / "src"
    shutil.copytree(
        ROOT / "advertisex", tree / "advertisex", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    return tree


def install_from_index(where: Path) -> Path:
    """``pip install .`` into a new venv, dependencies resolved from the index; its python."""
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(copy_sources(where))], check=True
    )
    return python


def build_clean_environment(where: Path) -> Path:
    """A venv holding exactly the declared distributions plus advertisex's own wheel; its python."""
    if os.environ.get("ADVERTISEX_INSTALL_FROM_INDEX"):
        return install_from_index(where)
    venv = where / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True
    )
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    for name in closure(PROJECT["dependencies"]):
        dist = metadata.distribution(name)
        for file in dist.files or []:
            if file.parts[0] == "..":  # scripts and data outside site-packages
                continue
            target = site / file
            source = Path(str(dist.locate_file(file)))
            if source.exists() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(source)
    # The package itself as pip installs it: a wheel built from a copy of the sources, so the
    # check also covers package data and the console script.
    tree = copy_sources(where)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    options = ["--no-deps", "--no-index", "--no-build-isolation"]
    subprocess.run([*pip, "wheel", *options, "-w", str(where / "dist"), str(tree)], check=True)
    [wheel] = (where / "dist").glob("advertisex-*.whl")
    subprocess.run([*pip, "--python", str(python), "install", *options, str(wheel)], check=True)
    return python


@pytest.mark.slow
@pytest.mark.integration
def test_a_plain_install_runs_ingest_process_query(tmp_path, seed_samples):
    python = build_clean_environment(tmp_path)
    env = {
        "PATH": f"{python.parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "ADVERTISEX_DATA_DIR": str(tmp_path / "data"),
        "ADVERTISEX_CORRELATION__UPDATE_MARTS": "false",
    }
    cli = str(python.parent / "advertisex")

    def run(*args: str) -> str:
        result = subprocess.run([cli, *args], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert result.returncode == 0, f"advertisex {' '.join(args)}:\n{result.stderr}"
        return result.stdout

    not_here = subprocess.run(
        [str(python), "-c", "import pytest"], capture_output=True, env=env
    ).returncode
    assert not_here != 0, "the clean environment sees more than the declared distributions"
    run("ingest", str(seed_samples))
    run("process")
    counts = json.loads(
        run(
            "query",
            "select (select count(*) from curated.impressions) i,"
            " (select count(*) from curated.bid_requests) b",
            "--format",
            "json",
        )
    )
    assert counts == [{"i": 100, "b": 44}]
    assert os.path.realpath(
        subprocess.run(
            [str(python), "-c", "import advertisex; print(advertisex.__file__)"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        ).stdout.strip()
    ).startswith(str(tmp_path))
