"""What the console needs from the platform facade (``advertisex.api.AdvertiseX``).

The console sits below the facade and the reports, so it is handed one instead of
importing it: the CLI passes ``advertisex.open``'s object, tests may pass their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

    from advertisex.config import Settings
    from advertisex.lake.tables import Lake


class Platform(Protocol):
    settings: Settings

    @property
    def lake(self) -> Lake: ...

    def report(self, name: str, options: Any = None, **fields: Any) -> Any: ...

    def quarantine_summary(self, **selection: Any) -> pa.Table: ...

    def quarantine_timeline(self, **selection: Any) -> pa.Table: ...

    def quarantine_records(self, limit: int | None = None, **selection: Any) -> pa.Table: ...

    def replay_preview(self, **selection: Any) -> dict[str, int]: ...

    def replay_quarantine(self, **selection: Any) -> Any: ...
