import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex.kernels.ivt import IvtRules, classify

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"


def test_each_rule_names_itself_and_rows_keep_their_order():
    rows = pa.table(
        {
            "user_agent": [CHROME, GOOGLEBOT, "python-requests/2.31", CHROME, CHROME, None],
            "ip": ["10.0.0.1", "10.0.0.2", "10.0.0.3", "198.51.100.7", "2001:db8::1", "not-an-ip"],
            "extras": [None, None, None, None, '{"is_test": true}', '{"is_test": false}'],
            "user_id": ["u1", "u2", "u3", "u4", "u5", "bot-9"],
        }
    )
    rules = IvtRules(ip_ranges=("198.51.100.0/24", "2001:db8::/32"), ivt_users=frozenset({"bot-9"}))
    assert classify(rows, rules).to_pylist() == [
        [],
        ["known_crawler_ua"],
        ["known_crawler_ua"],
        ["ip_range:198.51.100.0/24"],
        ["ip_range:2001:db8::/32", "test_traffic"],
        ["ivt_user"],
    ]


def test_human_browsers_are_not_flagged_in_any_order():
    agents = [CHROME.replace("124.0", f"12{i}.0") for i in range(50)] + [GOOGLEBOT]
    rows = pa.table({"user_agent": list(reversed(agents))})
    verdicts = classify(rows, IvtRules()).to_pylist()
    assert verdicts[0] == ["known_crawler_ua"]
    assert all(v == [] for v in verdicts[1:])


def test_user_agents_given_as_codes_are_judged_by_their_codes(monkeypatch) -> None:
    """Enrichment hands the user agents over as a dictionary: the crawler rule judges its
    values and takes the verdicts by code — the same verdicts as for the texts, in chunks
    of their own dictionaries — without looking every row's text up again."""
    import pyarrow.compute as pc

    from advertisex.kernels import ivt

    agents = [CHROME, GOOGLEBOT, None, "python-requests/2.31", CHROME, GOOGLEBOT]
    plain = classify(pa.table({"user_agent": agents}), IvtRules()).to_pylist()
    codes = pa.chunked_array(
        [pc.dictionary_encode(pa.array(agents[:4])), pc.dictionary_encode(pa.array(agents[4:]))]
    )
    is_in = pc.is_in

    def no_lookup_of_codes(values, *args, **kwargs):
        assert not pa.types.is_dictionary(values.type), "the coded agents were decoded"
        return is_in(values, *args, **kwargs)

    monkeypatch.setattr(ivt.pc, "is_in", no_lookup_of_codes)
    assert classify(pa.table({"user_agent": codes}), IvtRules()).to_pylist() == plain
    assert plain[:4] == [[], ["known_crawler_ua"], [], ["known_crawler_ua"]]


def test_no_columns_no_verdicts():
    assert classify(pa.table({"other": [1, 2]}), IvtRules()).to_pylist() == [[], []]


def test_clicks_are_judged_by_the_user_agent_and_ip_range_mark_in_their_extras():
    """Tracking-endpoint clicks carry the request's agent in extras (clicks have no such
    column) and, when the collector found the whole address in a listed range before
    truncating it, an ``ivt_ip_range`` mark; a mark of a range no longer listed is ignored."""
    rows = pa.table(
        {
            "extras": [
                orjson.dumps(e).decode() if e else None
                for e in [
                    {"user_agent": GOOGLEBOT, "ip": "10.1.2.0/24"},
                    {
                        "user_agent": CHROME,
                        "ip": "198.51.100.0/24",
                        "ivt_ip_range": "198.51.100.0/24",
                    },
                    {"user_agent": CHROME, "ivt_ip_range": "192.0.2.0/24"},
                    {"user_agent": CHROME, "ip": "198.51.100.0/24"},
                    None,
                ]
            ],
            "user_id": ["u1", "u2", "u3", "u4", "u5"],
        }
    )
    rules = IvtRules(ip_ranges=("198.51.100.0/24",))
    assert classify(rows, rules).to_pylist() == [
        ["known_crawler_ua"],
        ["ip_range:198.51.100.0/24"],
        [],  # marked with a range that is not (or no longer) listed
        [],  # a truncated address written as a network is never range-checked itself
        [],
    ]


def test_flags_and_request_fields_are_found_however_their_keys_are_spelled() -> None:
    """The engine reads only the extras that name a flag or a request field, or hold an
    escape: a key spelled with escapes counts, a name found only in a value does not."""
    rows = pa.table(
        {
            "extras": [
                '{"\\u0074est": "TRUE"}',  # "test", spelled with an escape
                '{"note": "test"}',  # the name in a value only
                '{"is_test": 1}',
                '{"\\u0075ser_agent": "' + GOOGLEBOT + '"}',  # "user_agent", spelled with an escape
                None,
                '{"x": "\\\\"}',
            ],
            "user_id": ["u1", "u2", "u3", "u4", "u5", "u6"],
        }
    )
    assert classify(rows, IvtRules()).to_pylist() == [
        ["test_traffic"],
        [],
        ["test_traffic"],
        ["known_crawler_ua"],
        [],
        [],
    ]
    nothing = pa.table({"extras": pa.nulls(3, pa.string()), "user_id": ["u1", "u2", "u3"]})
    assert classify(nothing, IvtRules()).to_pylist() == [[], [], []]


def test_an_address_that_repeats_gets_its_verdict_on_every_row_and_the_first_range_wins():
    """Verdicts are worked out once per distinct address: every row of an address gets
    it, over several chunks, with nulls and texts that are not addresses among them; of
    two listed ranges that hold an address, the first listed names it."""
    import ipaddress

    ranges = ("198.51.100.0/25", "198.51.100.0/24", "2001:db8::/32")
    addresses = ["198.51.100.7", "198.51.100.200", "10.1.2.3", None, "2001:db8::9", "x.y", "1.2.3"]
    chunks = [[addresses[(i * 7 + j) % len(addresses)] for i in range(40)] for j in range(3)]
    rows = pa.table({"ip": pa.chunked_array(chunks, pa.string())})

    def expected(text):
        try:
            address = ipaddress.ip_address(text)
        except (TypeError, ValueError):
            return []
        return [f"ip_range:{r}" for r in ranges if address in ipaddress.ip_network(r)][:1]

    assert classify(rows, IvtRules(ip_ranges=ranges)).to_pylist() == [
        expected(text) for chunk in chunks for text in chunk
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{1,4}){2,4}\Z"),
            st.from_regex(r"\A[ +\-0-9a-f:.x_]{0,16}\Z"),
            st.text(max_size=12),
        ),
        max_size=40,
    )
)
def test_addresses_are_read_as_numbers_as_the_engine_reads_them(texts: list[str | None]) -> None:
    """Arrow reads the plain dotted quads and knows texts of too few parts are none: each
    address's number is the engine's (its query alone reads the rest)."""
    from advertisex.kernels import ivt
    from advertisex.util import engine

    addresses = pa.array(texts, pa.string())
    by_engine = engine.run(
        f"SELECT {ivt._ipv4_number('p')} AS n FROM (SELECT string_split(ip, '.') AS p FROM ips)",
        ips=pa.table({"ip": addresses}),
    ).column("n")
    assert ivt._ipv4_numbers(addresses).to_pylist() == by_engine.to_pylist()


def test_an_address_whose_parts_overflow_is_none_not_an_error() -> None:
    """A hostile address (its number past 64 bits) stopped the whole batch with the
    engine's overflow error: it is no address, and the rows around it are judged."""
    from advertisex.kernels import ivt

    numbers = ivt._ipv4_numbers(
        pa.array(["600000000000.1.2.3", "1.2.3.-9223372036854775808", "192.0.2.1"])
    )
    assert numbers.to_pylist() == [None, None, 3221225985]
    rows = pa.table({"ip": ["600000000000.1.2.3", "192.0.2.7"]})
    assert classify(rows, IvtRules(ip_ranges=("192.0.2.0/24",))).to_pylist() == [
        [],
        ["ip_range:192.0.2.0/24"],
    ]


def test_plain_addresses_need_no_engine(monkeypatch) -> None:
    from advertisex.kernels import ivt
    from advertisex.util import engine

    monkeypatch.setattr(engine, "run", None)  # any engine query fails
    numbers = ivt._ipv4_numbers(pa.array(["192.0.2.1", "2001:db8::1", "x", None]))
    assert numbers.to_pylist() == [3221225985, None, None, None]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{1,4}){2,4}\Z"),
            st.sampled_from(["198.51.100.7", "198.51.100.200", "2001:db8::9", " 1.2.3.4"]),
            st.from_regex(r"\A[ +\-0-9a-f:.x_]{0,16}\Z"),
            st.text(max_size=12),
        ),
        max_size=40,
    ),
    st.integers(0, 40),
)
def test_addresses_read_by_the_helpers_get_the_verdicts_of_their_distinct_texts(
    texts: list[str | None], cut: int
) -> None:
    """Each row's plain dotted quad read by the compiled helpers gets the verdict the
    distinct texts' reading gives it (the first listed range that holds it), over chunks."""
    from advertisex.kernels import ivt

    ranges = ("198.51.100.0/25", "0.0.0.0/1", "198.51.100.0/24", "2001:db8::/32")
    ips = pa.chunked_array([texts[:cut], texts[cut:]], pa.string())
    got = ivt._ip_verdicts(ips, ranges)
    assert got.to_pylist() == ivt._distinct_ip_verdicts(ips, ranges).to_pylist()


def test_plain_addresses_are_read_row_by_row_not_by_their_distinct_texts(monkeypatch) -> None:
    """Only the texts that are no plain dotted quad are judged by their distinct texts:
    hashing every row's address to find them cost more than reading each row's."""
    from advertisex import native
    from advertisex.kernels import ivt

    if not native.available():
        pytest.skip("without the compiled helpers every address is judged by its distinct text")
    asked: list[list[str | None]] = []
    judge = ivt._distinct_ip_verdicts

    def distinct(ips, ranges):
        asked.append(ips.to_pylist())
        return judge(ips, ranges)

    monkeypatch.setattr(ivt, "_distinct_ip_verdicts", distinct)
    ips = pa.chunked_array([["192.0.2.1", None, "2001:db8::1"], ["192.0.2.1", "10.0.0.1"]])
    verdicts = ivt._ip_verdicts(ips, ("192.0.2.0/24", "2001:db8::/32"))
    assert verdicts.to_pylist() == [
        "ip_range:192.0.2.0/24",
        None,
        "ip_range:2001:db8::/32",
        "ip_range:192.0.2.0/24",
        None,
    ]
    assert asked == [["2001:db8::1"]]


@settings(max_examples=100, deadline=None)
@given(
    verdicts=st.lists(
        st.lists(st.sampled_from([None, None, None, "a", "b"]), min_size=6, max_size=6),
        min_size=1,
        max_size=4,
    ),
    cut=st.integers(0, 6),
)
def test_each_row_lists_the_rules_that_caught_it_in_their_order(verdicts, cut) -> None:
    """Rows caught by no rule (nearly all) get no list built; the others list their rules'
    verdicts in the rules' order, whatever chunks each verdict column comes in."""
    from advertisex.kernels.ivt import _rule_lists

    columns = [
        pa.chunked_array([v[:cut], v[cut:]], pa.string()) if j % 2 else pa.array(v, pa.string())
        for j, v in enumerate(verdicts)
    ]
    expected = [[v[row] for v in verdicts if v[row] is not None] for row in range(6)]
    assert _rule_lists(columns, 6).to_pylist() == expected
