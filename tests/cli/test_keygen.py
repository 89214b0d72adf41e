"""``advertisex keygen``: the entry it prints is pasted into advertisex.toml as it is."""

from __future__ import annotations

import tomllib

import pytest

NAME = 'Ana\'s "ad server" \\ EU — 2'


@pytest.mark.parametrize("scope", [[], ["--scope", "read"]], ids=["collector", "console"])
def test_a_name_with_quotes_and_backslashes_reads_back_from_the_entry(cli, tmp_path, scope):
    """``name = "{name}"`` as it was: a quote in the name ended the string and broke the
    file the entry was pasted into."""
    code, out, err = cli(tmp_path / "data", "keygen", "--name", NAME, *scope)
    assert code == 0, err
    entry = tomllib.loads(err.split("advertisex.toml:", 1)[1])
    (table,) = entry["console"]["keys"] if scope else entry["collector"]["api_keys"]
    assert table["name"] == NAME and out.startswith("adx_")


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("", "--name is empty"),
        ("  ", "--name is empty"),
        ('ana"\n[lake]\ncatalog_uri = "x', "holds a line break or a control character"),
        ("ana\x1b]0;title\x07", "holds a line break or a control character"),
        ("ana\u202eusr", "holds a line break or a control character"),
    ],
)
def test_a_name_that_is_not_one_is_refused(cli, tmp_path, name, said):
    """An empty name made a key whose holder logs and metrics could not name; a line break
    added settings of its own to the file the entry goes into."""
    code, out, err = cli(tmp_path / "data", "keygen", "--name", name)
    assert code == 2 and out == "" and said in err and "\x1b" not in err, err
    assert "→ name who will hold the key" in err
