"""General invalid traffic (GIVT, per the MRC definition): crawlers, listed IP ranges, test traffic.

Pure: Arrow rows in, one list of rule names per row out (empty = valid traffic).

- Known crawlers and bots by user agent come from the ``crawler-user-agents`` package
  (the community-maintained list, regularly released on PyPI) — no hand-written regex.
  Matching costs ~0.5 ms per user agent, so only *distinct* agents are checked, and
  verdicts are cached for the life of the process (a day of traffic has few of them).
- IP ranges (data centres, internal test addresses) are CIDRs from configuration;
  IPv4 is range-checked in the engine, IPv6 per distinct address in Python.
- Test traffic: a record flagged ``is_test`` / ``test`` true (kept in ``extras``).
- Clicks and conversions of a user whose impressions were invalid traffic are invalid
  too (MRC: activity stemming from IVT is IVT); the runner passes those user ids.
- Records from the collector's tracking endpoints carry the request's user agent and
  IP; clicks and conversions have no such columns, so they are read from ``extras``.
  Their IP is stored truncated (as a network, ``a.b.c.0/24``) or hashed, which no range
  check can judge, so the collector checks the ranges on the whole address and marks a
  hit as ``ivt_ip_range`` (in ``extras``): the same rule, applied before the address
  was made private.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex import native
from advertisex.util import engine
from advertisex.util.arrays import column_ascending, joined, spread

CRAWLER = "known_crawler_ua"
IVT_IP_RANGE = "ivt_ip_range"
TEST_TRAFFIC = "test_traffic"
IVT_USER = "ivt_user"


@dataclass(frozen=True)
class IvtRules:
    """What counts as invalid traffic for a batch."""

    crawler_user_agents: bool = True
    ip_ranges: tuple[str, ...] = ()
    test_flags: tuple[str, ...] = ("is_test", "test")
    ivt_users: frozenset[str] = field(default_factory=frozenset)

    def with_users(self, users: Iterable[str]) -> IvtRules:
        return IvtRules(
            self.crawler_user_agents, self.ip_ranges, self.test_flags, self.ivt_users | set(users)
        )


@lru_cache(maxsize=200_000)
def is_crawler(user_agent: str) -> bool:
    import crawleruseragents

    return bool(crawleruseragents.is_crawler(user_agent))


def classify(rows: pa.Table, rules: IvtRules) -> pa.ChunkedArray:
    """One ``list<string>`` of IVT rules per row, in row order; columns used when present:
    ``user_agent``, ``ip``, ``extras``, ``user_id``.

    Verdicts are built column by column with vectorized lookups (no joins, which would
    not keep row order) and assembled into lists in one projection.
    """
    rows = _request_fields(rows)
    n = rows.num_rows
    names = set(rows.column_names)
    verdicts: dict[str, pa.Array] = {}
    if rules.crawler_user_agents and "user_agent" in names:
        verdicts["crawler"] = _crawler_verdicts(rows.column("user_agent"))
    if rules.ip_ranges and "ip" in names:
        verdicts["ip_range"] = _ip_verdicts(rows.column("ip"), rules.ip_ranges)
    if rules.ip_ranges and IVT_IP_RANGE in names:
        mark = rows.column(IVT_IP_RANGE).combine_chunks()
        listed = pc.is_in(mark, value_set=pa.array(rules.ip_ranges, pa.string()))
        marked = pc.if_else(listed, pc.binary_join_element_wise("ip_range:", mark, ""), None)
        found = verdicts.get("ip_range")
        verdicts["ip_range"] = marked if found is None else pc.coalesce(joined(found), marked)
    if rules.test_flags and "extras" in names:
        verdicts["test"] = _test_traffic(rows.column("extras"), rules.test_flags)
    if rules.ivt_users and "user_id" in names:
        users = pa.array(sorted(rules.ivt_users), pa.string())
        hit = pc.fill_null(pc.is_in(rows.column("user_id"), value_set=users), False)
        verdicts["user"] = pc.if_else(hit, IVT_USER, None)
    return pa.chunked_array([_rule_lists(list(verdicts.values()), n)])


def _crawler_verdicts(agents: pa.ChunkedArray) -> pa.ChunkedArray:
    """CRAWLER where the row's user agent is a known crawler's, else null; each distinct
    agent judged once (:func:`is_crawler`).

    Agents given as codes (enrichment hands them over so) are looked up by their codes:
    each dictionary value judged, the verdict taken by code. Looked up by their texts, a
    dictionary was decoded and every row's agent (≈ 110 bytes) hashed again.

    >>> codes = pa.DictionaryArray.from_arrays(pa.array([1, None, 0]), ["Googlebot/2.1", "Mozilla/5.0"])
    >>> _crawler_verdicts(pa.chunked_array([codes])).to_pylist()
    [None, None, 'known_crawler_ua']
    """
    if not pa.types.is_dictionary(agents.type):
        bots = [
            ua
            for ua in pc.unique(agents.combine_chunks()).drop_null().to_pylist()
            if is_crawler(ua)
        ]
        hit = pc.fill_null(pc.is_in(agents, value_set=pa.array(bots, pa.string())), False)
        return pc.if_else(hit, CRAWLER, None)
    chunks = []
    for chunk in agents.chunks:
        judged = [ua is not None and is_crawler(ua) for ua in chunk.dictionary.to_pylist()]
        hit = pc.fill_null(pa.array(judged, pa.bool_()).take(chunk.indices), False)
        chunks.append(pc.if_else(hit, CRAWLER, None))
    return pa.chunked_array(chunks, pa.string())


def _rule_lists(verdicts: list[pa.Array | pa.ChunkedArray], n: int) -> pa.Array:
    """Per row, the rules (non-null verdicts, in ``verdicts`` order) that caught it; only
    the caught rows (a few percent) are gathered, the others get [].

    >>> _rule_lists([pa.array([None, "a", "a"]), pa.array(["b", None, "b"])], 3).to_pylist()
    [['b'], ['a'], ['a', 'b']]
    """
    if n == 0 or not verdicts:
        return _no_rules(n)
    # The caught rows are found on Arrow's bitmaps, and only theirs made a rows × rules
    # matrix: one of every row cost more than the rest of the lists.
    held = [pc.is_valid(v) for v in verdicts]
    some = held[0]
    for found in held[1:]:
        some = pc.or_(some, found)
    rows = np.flatnonzero(some.to_numpy(zero_copy_only=False))
    if len(rows) == 0:
        return _no_rules(n)
    index = pa.array(rows)
    caught = np.column_stack(
        [found.take(index).to_numpy(zero_copy_only=False) for found in held]
    )  # caught rows × rules
    taken = pa.concat_arrays([joined(v.take(index)).cast(pa.string()) for v in verdicts])
    row, rule = np.nonzero(caught)  # row by row, each row's rules in order
    counts = np.zeros(n, dtype=np.int32)
    counts[rows] = caught.sum(axis=1)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    return pa.ListArray.from_arrays(offsets, taken.take(pa.array(rule * len(rows) + row)))


def _test_traffic(extras: pa.ChunkedArray, flags: tuple[str, ...]) -> pa.Array:
    """TEST_TRAFFIC where a test flag in ``extras`` is true, else null (the engine reads the
    JSON of the rows that may hold a flag alone)."""
    tests = " OR ".join(
        f"lower(CAST(json_extract(extras, '$.{flag}') AS VARCHAR)) IN ('true', '1', '\"true\"')"
        for flag in flags
    )
    found = _from_json(extras, flags, f"coalesce({tests}, false) AS t")
    test = pa.array(np.zeros(len(extras), dtype=bool)) if found is None else found.column("t")
    return pc.if_else(pc.fill_null(test, False), TEST_TRAFFIC, None)


def _from_json(
    extras: pa.ChunkedArray, keys: tuple[str, ...] | list[str], select: str
) -> pa.Table | None:
    """``SELECT {select} FROM rows`` over the rows whose ``extras`` may hold one of ``keys``
    (the key's name is in the text, or an escape, which may spell it), every other row
    null; None when no row may. Extras are rare, so most pieces skip the engine."""
    may = pc.is_valid(extras)
    if pc.any(may).as_py():
        text = pc.fill_null(extras, "")
        spelled = pc.match_substring(text, "\\")
        for key in keys:
            spelled = pc.or_(spelled, pc.match_substring(text, key))
        may = pc.and_(may, spelled)
    rows = np.flatnonzero(may.to_numpy(zero_copy_only=False))
    if len(rows) == 0:
        return None
    found = engine.run(
        f"SELECT {select} FROM rows", rows=pa.table({"extras": extras.take(pa.array(rows))})
    )
    return pa.table({n: spread(found.column(n), rows, len(extras)) for n in found.column_names})


def _no_rules(n: int) -> pa.Array:
    """``n`` empty lists of rules."""
    return pa.ListArray.from_arrays(np.zeros(n + 1, dtype=np.int32), pa.array([], pa.string()))


def _request_fields(rows: pa.Table) -> pa.Table:
    """``user_agent`` and ``ip`` from ``extras`` where the table has no such columns (clicks,
    conversions), and the collector's ``ivt_ip_range`` mark; only columns found are added."""
    if "extras" not in rows.column_names or rows.num_rows == 0:
        return rows
    wanted = [f for f in ("user_agent", "ip") if f not in rows.column_names] + [IVT_IP_RANGE]
    picks = ", ".join(f"json_extract_string(extras, '$.{f}') AS {f}" for f in wanted)
    found = _from_json(rows.column("extras"), wanted, picks)
    if found is None:
        return rows
    for name in wanted:
        column = found.column(name)
        if column.null_count < len(column):
            rows = rows.append_column(name, column)
    return rows


def _ip_verdicts(ips: pa.ChunkedArray, ranges: tuple[str, ...]) -> pa.ChunkedArray | pa.Array:
    """The first listed range each address falls in (plain IPv4 quads read row by row by the
    compiled helpers; the other texts by :func:`_distinct_ip_verdicts`)."""
    found = native.plain_ipv4s(ips)
    if found is None:
        return _distinct_ip_verdicts(ips, ranges)
    # The compiled helpers read each row's plain dotted quad (nearly every address) in
    # one pass: hashing every row's text to find the distinct ones, then a regex, a split
    # and a cast over those, cost ≈ 5 ms a piece of impressions. The other texts are
    # judged as before, by their distinct texts.
    numbers, plain = found
    v4, _ = _networks(ranges)
    rule = np.full(len(ips), -1, dtype=np.int64)
    for at in reversed(range(len(v4))):  # reversed: the first listed range wins
        net = v4[at][0]
        inside = (numbers >= int(net.network_address)) & (numbers <= int(net.broadcast_address))
        rule[inside & plain] = at
    labels = pa.array([f"ip_range:{text}" for _, text in v4], pa.string())
    verdicts = labels.take(pa.array(rule, mask=rule < 0))
    rest = np.flatnonzero(~plain & pc.is_valid(ips).to_numpy(zero_copy_only=False))
    if len(rest):
        found_rest = _distinct_ip_verdicts(column_ascending(ips, rest), ranges)
        verdicts = pc.coalesce(verdicts, spread(joined(found_rest), rest, len(ips)))
    return verdicts


def _distinct_ip_verdicts(
    ips: pa.ChunkedArray | pa.Array, ranges: tuple[str, ...]
) -> pa.ChunkedArray | pa.Array:
    """:func:`_ip_verdicts` of the texts the compiled helpers leave (every text without them).

    Worked out once per distinct address and handed to its rows: a user comes back within
    a piece, so a piece of impressions has about one distinct address in five rows, and
    the engine's parse of every row's text was ≈ 0.3 µs of an impression's CPU.
    """
    v4, v6 = _networks(ranges)
    encoded = pc.dictionary_encode(joined(ips))  # a null address: a null index, no verdict
    distinct = encoded.dictionary
    numbers = _ipv4_numbers(distinct)
    labels: pa.ChunkedArray | pa.Array = pa.nulls(len(distinct), pa.string())
    for net, text in reversed(v4):  # reversed: the first listed range wins
        inside = pc.fill_null(
            pc.and_(
                pc.greater_equal(numbers, int(net.network_address)),
                pc.less_equal(numbers, int(net.broadcast_address)),
            ),
            False,
        )
        labels = pc.if_else(inside, f"ip_range:{text}", labels)
    if v6:
        labels = pc.coalesce(labels, _v6_rules(distinct, v6))
    return joined(labels).take(encoded.indices)


# A dotted quad of decimal octets, as nearly every address is written: read by Arrow.
_PLAIN_IPV4 = r"^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$"
_OCTETS = np.array([16777216, 65536, 256, 1], dtype=np.int64)


def _ipv4_numbers(addresses: pa.Array) -> pa.Array:
    """Each address as a number, as :func:`_ipv4_number` reads its text (null: not one).

    Plain dotted quads are read by Arrow and texts of fewer than four parts are none; the
    engine reads only what is left, which is rare: its query over a piece's ≈ 7 k distinct
    addresses cost ≈ 6 ms, most of it planning.

    >>> _ipv4_numbers(pa.array(["10.0.0.1", "::1", None, "1.2.3.4.5", "01.2.3.4"])).to_pylist()
    [167772161, None, None, 16909060, 16909060]
    """
    plain = pc.fill_null(pc.match_substring_regex(addresses, _PLAIN_IPV4), False)
    is_plain = plain.to_numpy(zero_copy_only=False)
    numbers = np.zeros(len(addresses), dtype=np.int64)
    if is_plain.any():
        octets = pc.list_flatten(pc.split_pattern(addresses.filter(plain), "."))
        numbers[is_plain] = octets.cast(pa.int64()).to_numpy().reshape(-1, 4) @ _OCTETS
    valid = is_plain.copy()
    rest = np.flatnonzero(~is_plain)
    if len(rest):  # fewer than four parts: no number, as the SQL says
        dots = pc.count_substring(addresses.take(pa.array(rest)), ".")
        rest = rest[pc.fill_null(dots, 0).to_numpy(zero_copy_only=False) >= 3]
    if len(rest):
        read = engine.run(
            f"SELECT {_ipv4_number('p')} AS n FROM (SELECT string_split(ip, '.') AS p FROM ips)",
            ips=pa.table({"ip": addresses.take(pa.array(rest))}),
        ).column("n")
        numbers[rest] = pc.fill_null(read, 0).to_numpy()
        valid[rest] = pc.is_valid(read).to_numpy(zero_copy_only=False)
    return pa.array(numbers, mask=~valid)


Network = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]


def _networks(ranges: tuple[str, ...]) -> tuple[list[Network], list[Network]]:
    v4: list[Network] = []
    v6: list[Network] = []
    for text in ranges:
        net = ipaddress.ip_network(text, strict=False)
        (v4 if net.version == 4 else v6).append((net, text))
    return v4, v6


def _ipv4_number(parts: str) -> str:
    """SQL: an IPv4 address as a number from its text's ``parts`` (split at dots once:
    ``split_part`` four times scanned each text four times, twice the time); a part that
    is missing or not an integer makes it NULL, and so does one past 32 bits — no address,
    and its product would overflow BIGINT: "600000000000.1.2.3" stopped the whole batch
    with DuckDB's overflow error."""
    octet = [f"try_cast({parts}[{i}] AS BIGINT)" for i in range(1, 5)]
    within = " AND ".join(f"{o} BETWEEN -2147483648 AND 2147483647" for o in octet)
    number = f"{octet[0]} * 16777216 + {octet[1]} * 65536 + {octet[2]} * 256 + {octet[3]}"
    return f"(CASE WHEN {within} THEN {number} END)"


def _v6_rules(distinct: pa.Array, networks: list[Network]) -> pa.Array:
    """Per distinct address, the first listed IPv6 range it falls in (rare: in Python)."""
    rules: list[str | None] = []
    for text in distinct.to_pylist():
        rule = None
        if text is not None and ":" in text:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                address = None
            if address is not None:
                rule = next(
                    (f"ip_range:{label}" for net, label in networks if address in net), None
                )
        rules.append(rule)
    return pa.array(rules, pa.string())
