"""Schemathesis, taught the collector's bodies: how NDJSON, CSV and Avro are written.

The OpenAPI document describes an NDJSON body as the array of objects it carries, CSV and
Avro as what they are; these serializers and strategies let schemathesis send real bodies
of each (and, for CSV and Avro, broken ones beside them). Shared by the fuzz test and
``bench/fuzz.py``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import strategies as st

from tests.hostile import BID_SCHEMA, avro_file, poison_avro

_registered = False


def register() -> None:
    """Teach schemathesis the collector's media types (once per process)."""
    global _registered
    if _registered:
        return
    _registered = True

    @schemathesis.serializer("application/x-ndjson")
    def ndjson(ctx: Any, value: Any) -> bytes:
        items = value if isinstance(value, list) else [value]
        # The stdlib's encoder: generated data holds integers past 64 bits, which orjson refuses.
        return b"".join(json.dumps(item).encode() + b"\n" for item in items)

    schemathesis.serializer.alias("application/x-amz-json-1.1", "application/json")
    schemathesis.openapi.media_type("text/csv", csv_bodies())
    schemathesis.openapi.media_type("application/avro", avro_bodies())


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_ID = st.text("abcdefghij0123456789-", min_size=1, max_size=12)
_TIME = st.one_of(
    st.just("2026-11-20T10:00:00Z"),
    st.integers(1_700_000_000, 1_800_000_000).map(str),
    _TEXT,
)


@st.composite
def _click_rows(draw: Any) -> bytes:
    columns = ["timestamp", "user_id", "campaign_id", "event_type", "conversion_value"]
    rows = draw(
        st.lists(
            st.tuples(_TIME, _ID, _ID, st.sampled_from(["click", "conversion", "view"]), _TEXT),
            min_size=1,
            max_size=5,
        )
    )
    out = io.StringIO()
    writer = csv.writer(out, delimiter=draw(st.sampled_from([",", ";", "\t"])))
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue().encode()


def csv_bodies() -> st.SearchStrategy[bytes]:
    """Click CSV with a header, or bytes that are not quite that."""
    return st.one_of(_click_rows(), st.binary(max_size=256), _TEXT.map(str.encode))


@st.composite
def _bid_containers(draw: Any) -> bytes:
    records = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "auction_id": _ID,
                    "timestamp": _TIME,
                    "user_id": _ID,
                    "floor_price": st.one_of(st.none(), st.floats(0, 10), _TEXT),
                }
            ),
            min_size=1,
            max_size=5,
        )
    )
    return avro_file(records, schema=BID_SCHEMA, codec=draw(st.sampled_from(["null", "deflate"])))


def avro_bodies() -> st.SearchStrategy[bytes]:
    """Avro containers of bid requests, damaged ones, the poison, and plain garbage."""
    return st.one_of(
        _bid_containers(),
        _bid_containers().flatmap(
            lambda data: st.integers(1, len(data) - 1).map(lambda cut: data[:cut])
        ),
        st.just(poison_avro()),
        st.binary(max_size=256).map(lambda tail: b"Obj\x01" + tail),
    )


@dataclass
class FuzzReport:
    requests: dict[str, int] = field(default_factory=dict)  # operation → requests sent
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def fuzz(openapi_url: str, max_examples: int, checks: list[Any], seed: int = 0) -> FuzzReport:
    """Every operation of the document at ``openapi_url``, ``max_examples`` generated requests
    each (valid and invalid), every response put through ``checks``."""
    import requests

    register()
    schema = schemathesis.openapi.from_url(openapi_url)
    report = FuzzReport()
    session = requests.Session()
    for result in schema.get_all_operations():
        _fuzz_operation(result.ok(), max_examples, checks, session, report)
    return report


def _fuzz_operation(
    operation: Any, max_examples: int, checks: list[Any], session: Any, report: FuzzReport
) -> None:
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    label = operation.label
    cases = st.one_of(  # requests the document allows, and requests it does not
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        from schemathesis.core.failures import FailureGroup

        report.requests[label] = report.requests.get(label, 0) + 1
        try:
            response = case.call(session=session, timeout=60)
        except Exception as failure:  # no answer at all
            report.failures.append(f"{label}: {failure}")
            return
        # Counted before the checks, so a 5xx that fails them is counted too.
        report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=checks)
        except (Exception, FailureGroup) as failure:  # a FailureGroup is a BaseExceptionGroup
            report.failures.append(f"{label}: {failure}")

    run()
