"""``advertisex sign-url``: a link the collector accepts, or one line saying what to fix."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr

from advertisex.collector.tracking.params import parse_query
from advertisex.collector.tracking.signing import Keys
from tests.cli_fixtures import cli  # noqa: F401 (fixture)

SECRETS = {
    "ADVERTISEX_COLLECTOR__TRACKING__CLICK_SECRET": "global-key",
    "ADVERTISEX_COLLECTOR__TRACKING__CAMPAIGN_SECRETS": '{"cmp-own": "own-key"}',
    "ADVERTISEX_COLLECTOR__TRACKING__PUBLIC_URL": "https://track.example.com",
}


def test_sign_url_prints_a_link_the_collector_verifies(cli, tmp_path: Path) -> None:  # noqa: F811
    code, out, err = cli(
        tmp_path, "sign-url", "--to", "https://shop.example/sale?x=1", "--campaign-id", "cmp-own",
        "--creative-id", "cr-9", "--param", "placement=top", **SECRETS,
    )  # fmt: skip
    assert code == 0, err
    url = urlsplit(out.strip())
    assert (url.scheme, url.netloc, url.path) == ("https", "track.example.com", "/v1/c")
    params = parse_query(url.query.encode(), max_bytes=4096, max_parameters=64)
    assert params["to"] == "https://shop.example/sale?x=1" and params["placement"] == "top"
    Keys(SecretStr("global-key"), {"cmp-own": SecretStr("own-key")}).check(params, "cmp-own")
    code, out, _ = cli(
        tmp_path, "sign-url", "--to", "https://shop.example/", "--campaign-id", "cmp-2",
        "--format", "json", **SECRETS,
    )  # fmt: skip
    assert parse_qs(urlsplit(json.loads(out)["url"]).query)["campaign_id"] == ["cmp-2"]


def test_sign_url_errors_are_one_line_with_what_to_do(cli, tmp_path: Path) -> None:  # noqa: F811
    for args, env, said in [
        (["--to", "https://shop.example/", "--campaign-id", "c"], {}, "click_secret"),
        (["--to", "javascript:alert(1)", "--campaign-id", "c"], SECRETS, "javascript"),
        (
            ["--to", "https://shop.example/", "--campaign-id", "c", "--param", "x"],
            SECRETS,
            "NAME=VALUE",
        ),
    ]:
        code, out, err = cli(tmp_path, "sign-url", *args, **env)
        assert code == 2 and not out and said in err and "Traceback" not in err, err
