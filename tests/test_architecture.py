"""The layers drawn in docs/architecture.md are the contracts `make lint` checks."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def drawn_layers() -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    picture = re.search(r"```\n(cli.*?)```", text, re.S)
    assert picture, "docs/architecture.md has lost its picture"
    layers = []
    for line in picture.group(1).splitlines():
        if line.strip() in ("", "▼"):
            continue
        names = re.split(r"\s{2,}", line.strip())[0]  # the packages, before the description
        layers.append(" | ".join(n.strip() for n in names.split("│")))
    return layers


def test_the_picture_is_the_layers_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [layers] = [c for c in config["contracts"] if c["type"] == "layers"]
    assert drawn_layers() == layers["layers"]


def test_every_package_has_a_layer() -> None:
    drawn = {n.strip("()") for layer in drawn_layers() for n in layer.split(" | ")}
    packages = {
        p.stem if p.is_file() else p.name
        for p in (ROOT / "advertisex").iterdir()
        if (p.is_dir() and (p / "__init__.py").exists())
        or (p.suffix == ".py" and p.name != "__init__.py")
    }
    assert packages <= drawn, f"no layer for {sorted(packages - drawn)}"
