"""The deployment sketches in deploy/compose and deploy/k8s (not run here) at least parse,
and every ADVERTISEX_* variable they set names a real setting with a valid value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted(DEPLOY.glob("compose/*.yml")) + sorted(DEPLOY.glob("k8s/*.yaml"))


def _env(node: Any) -> dict[str, str]:
    """Every ADVERTISEX_* variable with a literal value anywhere in a manifest."""
    found: dict[str, str] = {}
    if isinstance(node, dict):
        if isinstance(node.get("name"), str) and node["name"].startswith("ADVERTISEX_"):
            found[node["name"]] = node.get("value", "")
        for key, value in node.items():
            if isinstance(key, str) and key.startswith("ADVERTISEX_"):
                found[key] = value
            found.update(_env(value))
    elif isinstance(node, list):
        for item in node:
            found.update(_env(item))
    return found


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_manifest_parses_and_names_real_settings(path: Path, monkeypatch, tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    from advertisex.config import Settings, load_settings

    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert documents
    variables = {k: v for d in documents for k, v in _env(d).items()}
    assert variables, "the manifest configures AdvertiseX through ADVERTISEX_* variables"
    for name, value in variables.items():
        model: Any = Settings
        for part in name.removeprefix("ADVERTISEX_").lower().split("__"):
            assert part in model.model_fields, f"{name}: no setting {part!r}"
            model = model.model_fields[part].annotation
        if value:  # literal values must load (secrets from secretKeyRef have none here)
            monkeypatch.setenv(name, str(value))
    empty = tmp_path / "empty.toml"
    empty.touch()  # a config file naming nothing: only the variables above count
    monkeypatch.setenv("ADVERTISEX_CONFIG", str(empty))
    load_settings()
