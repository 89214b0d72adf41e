"""Where the data lives, read without pydantic, and the rest of the settings on first use.

``advertisex query`` and ``advertisex report`` need the data directory and the lake's
section to start; importing pydantic and building the settings models (:mod:`advertisex.config`)
costs them more than DuckDB does. :func:`deferred` reads those few settings the way
:func:`advertisex.config.load_settings` does — file, then ``ADVERTISEX_*`` variables over
it, then the defaults — when they are plain text: text cannot fail their validation. The
other sections (``[processor]``, ``[monitor]`` …, in the file or as variables) are neither
read nor checked yet: anything read from the returned settings beyond data_dir and the lake
(another section's field, a method of the model) loads and validates the **whole**
configuration then, as ``load_settings`` does, and answers from it — so a command that uses
a section refuses a configuration that validation refuses (a question that reads
``raw.*`` uses ``[processor]``'s limits), and a question that uses none of them answers
without loading pydantic whatever those sections say. Any other configuration — an unknown
key or section, data_dir or a lake setting that is not text, a section that is not a table,
a file that does not parse — gets ``None``, and the caller loads the settings the usual way,
with their checks, warnings and messages.

Also here, for :mod:`advertisex.config` to share: which file is read, the variables that are
not settings, the defaults of the settings read here, and the locations derived from them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

# Environment variables with the prefix that are not settings.
OTHER_VARIABLES = {
    "ADVERTISEX_CONFIG": "the configuration file to read instead of ./advertisex.toml (empty: none)",
    "ADVERTISEX_API_KEY": "generate --to: the collector API key to send",
}
DEFAULT_DATA_DIR = Path("advertisex-data")
DEFAULT_CATALOG_NAME = "advertisex"
# The lake section's settings and their defaults (all text or None).
LAKE_DEFAULTS: dict[str, str | None] = {
    "catalog_uri": None,
    "catalog_name": DEFAULT_CATALOG_NAME,
    "warehouse": None,
}
# The sections of the settings (``advertisex.config.Settings``' fields that are models).
SECTIONS = (
    "lake",
    "processor",
    "collector",
    "correlation",
    "console",
    "monitor",
    "scale",
    "maintenance",
    "retention",
)

# The sections read and validated on first use, whatever the file and variables set in them.
_LATER = frozenset(SECTIONS[1:])

SettingsT = TypeVar("SettingsT")


def config_file() -> Path | None:
    """The configuration file: ``$ADVERTISEX_CONFIG``, else ``advertisex.toml`` here; None
    when the variable is set but empty (settings from defaults and the environment only)."""
    named = os.environ.get("ADVERTISEX_CONFIG", "advertisex.toml")
    return Path(named) if named else None


class Layout:
    """The places derived from ``data_dir`` and the lake section: one place decides the
    layout under data_dir (for the validated settings and the deferred ones alike)."""

    if TYPE_CHECKING:
        data_dir: Path
        lake: Any

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def words_dir(self) -> Path:
        """Where ``forget`` keeps the words of the files of ``retention.archive`` and of an
        object-store landing zone (``landing.summaries``): a cache of this machine's, which
        ``backup`` leaves out."""
        return self.data_dir / "words"

    @property
    def spill_dir(self) -> Path:
        """Where a marts build too big for memory writes its buckets (``marts.local``):
        on the lake's own disk, not in a temporary folder that may live in memory."""
        return self.data_dir / "spill"

    @property
    def warehouse_uri(self) -> str:
        return self.lake.warehouse or (self.data_dir / "warehouse").resolve().as_uri()

    @property
    def catalog_uri(self) -> str:
        if self.lake.catalog_uri:
            return str(self.lake.catalog_uri)
        return f"sqlite:///{(self.data_dir / 'catalog.db').resolve()}"


def raw_setting(section: str, name: str) -> Any:
    """``section.name`` as its ``ADVERTISEX_`` variable or the configuration file gives it,
    unvalidated (text from a variable, any TOML value from the file); None when neither sets
    it or the file does not parse. For a guess made before the settings load, never for a
    decision: what the validated settings say is what happens."""
    variable = f"ADVERTISEX_{section}__{name}".upper()
    for key, value in os.environ.items():
        if key.upper() == variable:
            return value
    path = config_file()
    file = _file_values(path) if path is not None and path.is_file() else None
    table = (file or {}).get(section)
    return table.get(name) if isinstance(table, dict) else None


def _file_values(path: Path) -> dict[str, Any] | None:
    """The configuration file's values as TOML gives them; None when it cannot be read or
    parsed (``load_settings`` says why)."""
    import tomllib

    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, ValueError):
        return None


def deferred(load: Callable[[], SettingsT]) -> SettingsT | None:
    """Settings whose data_dir and lake section are read here, and whose anything else
    comes from ``load()`` (the validated settings) on first use; None when the
    configuration sets anything else than the settings' own sections, or data_dir or the
    lake to anything but text (then call ``load()`` itself)."""
    values = _plain_values()
    if values is None:
        return None
    data_dir, lake = values
    return DeferredSettings(data_dir, lake, load)  # type: ignore[return-value]


def _plain_values() -> tuple[Path, dict[str, str | None]] | None:
    """(data_dir, lake section) as file and variables set them over the defaults; None
    when they set anything else than those and the other sections, or any of those to
    something that is not text."""
    data_dir: Any = None
    lake: dict[str, str | None] = dict(LAKE_DEFAULTS)
    path = config_file()
    if path is not None and path.is_file():
        file = _file_values(path)
        if file is None:
            return None  # load_settings says what is wrong with it
        data_dir = file.pop("data_dir", None)
        section = file.pop("lake", {})
        if not isinstance(section, dict) or set(section) - set(lake):
            return None
        if any(name not in _LATER or not isinstance(value, dict) for name, value in file.items()):
            return None  # an unknown key (load_settings warns) or a section that is no table
        lake.update(section)
        if data_dir is not None and not isinstance(data_dir, str):
            return None
    elif path is not None and "ADVERTISEX_CONFIG" in os.environ:
        return None  # a named file that is not there: load_settings' error
    seen: set[str] = set()
    for name, value in os.environ.items():
        upper = name.upper()
        if not upper.startswith("ADVERTISEX_") or upper in OTHER_VARIABLES:
            continue
        if upper in seen:
            return None  # the same setting twice, in two cases: load_settings decides
        seen.add(upper)
        parts = upper[len("ADVERTISEX_") :].lower().split("__")
        if parts == ["data_dir"]:
            data_dir = value
        elif len(parts) == 2 and parts[0] == "lake" and parts[1] in lake:
            lake[parts[1]] = value
        elif len(parts) < 2 or parts[0] not in _LATER:
            return None  # unknown (load_settings warns), or a whole section as JSON
    if any(v is not None and not isinstance(v, str) for v in lake.values()):
        return None
    if data_dir is not None and not data_dir.strip():
        return None  # Path("") is the current folder, not a data dir: load_settings' error
    return (DEFAULT_DATA_DIR if data_dir is None else Path(data_dir)), lake


class _Section:
    """A section of deferred settings: the fields read here, the rest from the validated
    section on first use."""

    def __init__(self, known: dict[str, Any], load: Callable[[], Any]) -> None:
        self.__dict__.update(known)
        self._load = load

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle …: not a setting
            raise AttributeError(name)
        return getattr(self._load(), name)


class DeferredSettings(Layout):
    """Settings whose data_dir and lake section were read without pydantic (see
    :func:`deferred`); any other field or method is the validated settings', loaded once on
    first use."""

    def __init__(
        self, data_dir: Path, lake: dict[str, str | None], load: Callable[[], Any]
    ) -> None:
        self.data_dir = data_dir
        self._load = load
        self._validated: Any = None
        self.lake = _Section(lake, lambda: self.validated.lake)
        for name in SECTIONS[1:]:
            setattr(self, name, _Section({}, self._validated_section(name)))

    def _validated_section(self, name: str) -> Callable[[], Any]:
        return lambda: getattr(self.validated, name)

    @property
    def validated(self) -> Any:
        """The settings as :func:`advertisex.config.load_settings` validates them."""
        if self._validated is None:
            self._validated = self._load()
        return self._validated

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle …: not a setting
            raise AttributeError(name)
        return getattr(self.validated, name)
