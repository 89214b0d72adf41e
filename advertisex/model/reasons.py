"""The catalogue of quarantine reason codes. Stable strings: dashboards and replays key on them.

A reason is written ``code`` or ``code:field`` (e.g. ``required_missing:user_id``), so a
record that fails several rules carries all of them. ``docs/reasons.md`` is generated
from this catalogue (``python -m advertisex.model.reasons``) so it cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    code: str
    sources: tuple[str, ...]
    meaning: str
    fix: str


_ALL = ("impressions", "clicks", "bids")

CATALOGUE: dict[str, Reason] = {
    r.code: r
    for r in [
        Reason(
            "json_invalid",
            _ALL,
            "The record is not valid JSON.",
            "Fix the producer's serializer; one JSON object per line (NDJSON) or a JSON array.",
        ),
        Reason(
            "json_not_object",
            _ALL,
            "The record is valid JSON but not an object.",
            "Send one JSON object per impression.",
        ),
        Reason(
            "json_duplicate_key",
            _ALL,
            "The JSON object names a field more than once (user_id twice, or a click's id as "
            "both event_id and click_id), so which value is the record's cannot be told: "
            "readers disagree (DuckDB takes the first, most JSON libraries the last).",
            "Write each field once per object; the detail names the fields.",
        ),
        Reason(
            "csv_column_count",
            ("clicks",),
            "The CSV row has more or fewer fields than the header.",
            "Quote fields that contain the delimiter; keep every row as wide as the header.",
        ),
        Reason(
            "csv_header_missing",
            ("clicks",),
            "The CSV file has no recognisable header row.",
            "Start the file with a header naming the columns (timestamp,user_id,campaign_id,event_type,…).",
        ),
        Reason(
            "csv_header_duplicate",
            ("clicks",),
            "The CSV header names a column twice, or a field by two of its names (timestamp and "
            "event_timestamp), so which value is a row's cannot be told.",
            "Name each column once in the header.",
        ),
        Reason(
            "avro_unreadable",
            ("bids",),
            "Bytes could not be decoded as Avro (truncated or corrupt block).",
            "Re-send the file; the records before the damage were kept.",
        ),
        Reason(
            "gzip_damaged",
            _ALL,
            "A gzip'd landing file's stream is damaged or cut short. The records of its sound "
            "gzip members were read; a member that fails its checks gives none (a damaged "
            "stream inflates to plausible, wrong records), one cut short those before the cut "
            "(a record cut in half there has its own reason). This record stands for the rest: "
            "its raw text is those bytes in base64, its detail says where and why.",
            "Send the file again whole (a resend's records already kept count as duplicates). "
            "To see what is left: base64-decode the raw text (after 'base64:').",
        ),
        Reason(
            "segment_unreadable",
            _ALL,
            "A whole landing file was set aside: its decoder overran its time budget "
            "(decode_timeout) or memory budget (decode_memory), crashed (decoder_crashed), or "
            "the file could not be read or decoded at all (decode_failed). The file stays where "
            "it landed; none of its records is in a table yet. The entry's raw text says which "
            "file and its size, its detail why.",
            "Fix the file or the cause (a larger processor.decode_* budget, a fixed decoder), "
            "then `advertisex quarantine replay --reason segment_unreadable`: the file is decoded "
            "again and each of its records passes exactly once.",
        ),
        Reason("encoding_invalid", _ALL, "The bytes are not valid UTF-8.", "Write UTF-8 text."),
        Reason(
            "query_too_long",
            ("impressions",),
            "A pixel's query string was longer than collector.tracking.max_query_bytes "
            "(the raw query is kept).",
            "Shorten the pixel URL (fewer or shorter parameters), or raise the limit.",
        ),
        Reason(
            "query_invalid_utf8",
            ("impressions",),
            "A pixel's query string (raw or percent-escaped) is not UTF-8.",
            "Percent-encode the UTF-8 bytes of every value in the ad markup.",
        ),
        Reason(
            "query_duplicate_parameter",
            ("impressions",),
            "A pixel named a parameter twice, so no value can be trusted.",
            "Fix the ad markup (often a macro appended to a URL that already had it).",
        ),
        Reason(
            "query_too_many_parameters",
            ("impressions",),
            "A pixel carried more parameters than collector.tracking.max_parameters.",
            "Send only the parameters the impression needs.",
        ),
        Reason(
            "required_missing",
            _ALL,
            "A required field is absent or empty (the field is named).",
            "Always send the field named after the colon.",
        ),
        Reason(
            "type_invalid",
            _ALL,
            "A field has the wrong type, e.g. an object where text is expected.",
            "Send the field as the type the source contract gives.",
        ),
        Reason(
            "number_invalid",
            _ALL,
            "A numeric field is not a number.",
            "Send prices and values as numbers (a dot as decimal separator).",
        ),
        Reason(
            "negative_value",
            _ALL,
            "A price or value is negative.",
            "Prices, costs and conversion values are never negative.",
        ),
        Reason(
            "amount_too_large",
            _ALL,
            "A price or cost is above 1,000,000, or a conversion value above 1,000,000,000 "
            "(in its currency): no real amount is, and the marts sum money exactly in "
            "64-bit micro-units.",
            "Check the field's unit: a price in micro-units or cents sent as a price is "
            "10^6 or 100 times too large.",
        ),
        Reason(
            "timestamp_invalid",
            _ALL,
            "The timestamp is neither ISO-8601 nor epoch seconds/milliseconds/microseconds, "
            "or it falls outside the years 1-9999.",
            "Send ISO-8601 (e.g. 2026-11-20T13:04:05.123Z) or epoch milliseconds.",
        ),
        Reason(
            "timestamp_in_future",
            _ALL,
            "The event time is further in the future than the allowed clock skew.",
            "Check the producer's clock and time zone; times without an offset are read as UTC.",
        ),
        Reason(
            "timestamp_too_old",
            _ALL,
            "The event time is before 1970-01-01 (no ad event is), or older than the "
            "configured maximum age (processor.max_event_age_days, off by default).",
            "Check the producer's timestamps; raise processor.max_event_age_days if a backfill "
            "older than it is intended.",
        ),
        Reason(
            "event_type_invalid",
            ("clicks",),
            "event_type is neither 'click' nor 'conversion'.",
            "Use event_type click or conversion.",
        ),
        Reason(
            "enum_invalid",
            ("impressions", "clicks", "bids"),
            "A field outside its enumeration (conversion_type: signup, purchase, install, lead, other; "
            "device_type: desktop, mobile, tablet, ctv, other).",
            "Send one of the listed values (case does not matter).",
        ),
        Reason(
            "country_invalid",
            ("impressions", "bids"),
            "country is not an ISO-3166 alpha-2 code.",
            "Send two-letter country codes such as US, DE, IN.",
        ),
        Reason(
            "currency_invalid",
            ("clicks",),
            "currency is not an ISO-4217 code.",
            "Send three-letter currency codes such as USD, EUR.",
        ),
        Reason(
            "id_invalid",
            _ALL,
            "An id contains whitespace or control characters, or is over 128 characters.",
            "Ids are opaque tokens: no spaces, no line breaks, at most 128 characters.",
        ),
        Reason(
            "unknown_campaign",
            ("impressions", "clicks", "bids"),
            "campaign_id is not in the loaded campaign dimension.",
            "Load the campaign (advertisex dims load), then advertisex quarantine replay.",
        ),
        Reason(
            "unknown_creative",
            ("impressions", "clicks", "bids"),
            "ad_creative_id is not in the loaded creative dimension.",
            "Load the creative (advertisex dims load), then advertisex quarantine replay.",
        ),
    ]
}


SEGMENT_UNREADABLE = "segment_unreadable"


def reason(code: str, field: str | None = None) -> str:
    """Build a reason string, checking the code is catalogued (a typo must fail loudly)."""
    if code not in CATALOGUE:
        raise KeyError(f"unknown reason code {code!r}")
    return f"{code}:{field}" if field else code


def markdown() -> str:
    lines = [
        "# Quarantine reason codes",
        "",
        "Generated from `advertisex/model/reasons.py` by `python -m advertisex.model.reasons`; do not edit.",
        "",
        "| code | sources | meaning | what to do |",
        "|---|---|---|---|",
    ]
    for r in CATALOGUE.values():
        lines.append(f"| `{r.code}` | {', '.join(r.sources)} | {r.meaning} | {r.fix} |")
    return "\n".join(lines) + "\n"


# Reasons of a landing file's undecodable rest: its records before the damage were kept,
# those after it are in no table until the producer sends the file again.
DAMAGE_REASONS = ("gzip_damaged", "avro_unreadable")


# The most of a record's raw text shown to people (``quarantine show``, the console's page):
# a damaged file's bytes (``gzip_damaged``, ``avro_unreadable``) or a runaway line can be
# megabytes, which neither a terminal nor a page shows. The data (JSON, the API) is whole.
SHOWN_RAW_CHARS = 2000


def shown_raw(raw: str | None, whole: str) -> str | None:
    """``raw`` cut to :data:`SHOWN_RAW_CHARS`, saying how much more there is and ``whole``:
    where it is shown whole.

    >>> shown_raw("x" * 2001, "see the file")[-36:]
    'x … (1 more character: see the file)'
    >>> shown_raw("short", "see the file")
    'short'
    """
    if raw is None or len(raw) <= SHOWN_RAW_CHARS:
        return raw
    more = len(raw) - SHOWN_RAW_CHARS
    return f"{raw[:SHOWN_RAW_CHARS]} … ({more:,} more character{'s' if more > 1 else ''}: {whole})"


if __name__ == "__main__":
    print(markdown(), end="")
