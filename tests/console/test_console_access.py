"""Access beyond loopback: console keys by scope, bearer or signed session cookie."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from advertisex.collector.access import hash_key

pytestmark = pytest.mark.integration

READ, ADMIN = "adx_read_key_for_tests", "adx_admin_key_for_tests"
KEYS = [
    {"name": "analyst", "sha256": hash_key(READ), "scope": "read"},
    {"name": "operator", "sha256": hash_key(ADMIN), "scope": "admin"},
]


@pytest.fixture
def remote(lake_template: Path, make_client: Callable[..., Any]) -> Any:
    """The console as bound to 0.0.0.0 (so keys are required), reached over HTTPS."""
    client = make_client(lake_template, "0.0.0.0", console={"keys": KEYS})
    client.base_url = "https://console.example"
    return client


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_without_a_key_nothing_is_shown(remote: Any) -> None:
    api = remote.get("/api/v1/status")
    assert api.status_code == 401 and api.json()["code"] == "unauthorized"
    assert "data_dir" not in api.text and "impressions" not in api.text
    page = remote.get("/campaigns", headers={"accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fcampaigns"
    assert remote.get("/api/v1/status", headers=_bearer("adx_wrong")).status_code == 401
    assert remote.get("/login").status_code == 200  # the way in stays open


def test_a_read_key_reads_but_cannot_replay(remote: Any) -> None:
    assert remote.get("/api/v1/lake", headers=_bearer(READ)).status_code == 200
    query = remote.post("/api/v1/query", json={"sql": "select 1 as a"}, headers=_bearer(READ))
    assert query.json()["rows"] == [{"a": 1}]
    replay = remote.post("/api/v1/quarantine/replay", json={"reason": "x"}, headers=_bearer(READ))
    assert (replay.status_code, replay.json()["code"]) == (403, "forbidden")
    body = {"reason": "unknown_creative"}
    allowed = remote.post("/api/v1/quarantine/replay", json=body, headers=_bearer(ADMIN))
    assert allowed.status_code == 200 and allowed.json()["batch_id"] is None
    typo = remote.post("/api/v1/quarantine/replay", json={"reason": "x"}, headers=_bearer(ADMIN))
    assert typo.status_code == 400 and "unknown reason 'x'" in typo.json()["message"]


def test_sign_in_sets_a_secure_session_cookie(remote: Any) -> None:
    form = remote.get("/login?next=/lake").text
    token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    wrong = remote.post("/login", data={"csrf": token, "key": "nope", "next": "/lake"})
    assert wrong.status_code == 401 and "not a console key" in wrong.text
    signed = remote.post(
        "/login",
        data={"csrf": token, "key": READ, "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/"  # never off-site
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith("__Host-adx_session=")
    for attribute in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower()
    page = remote.get("/lake", headers={"accept": "text/html"})
    assert page.status_code == 200 and "analyst (read)" in page.text
    remote.cookies.set("__Host-adx_session", "forged.value.sig")
    assert remote.get("/api/v1/lake").status_code == 401


def test_sign_in_without_the_csrf_token_is_refused(remote: Any) -> None:
    response = remote.post("/login", data={"key": READ})
    assert response.status_code == 403


def test_a_form_is_read_within_bounds_before_anything_else(remote: Any) -> None:
    """/login is open without a key: its form must not let a stranger write or hold much."""
    # Multipart was parsed too, a file part of any size spooled to the temporary folder
    # before the token was checked (then answered 403).
    upload = remote.post("/login", files={"f": ("f.bin", b"\0" * (2 << 20))}, data={"key": "x"})
    assert upload.status_code == 415 and 'data-code="unsupported_media_type"' in upload.text
    # A field past 1 MiB was Starlette's HTTPException: a 500 "failed unexpectedly".
    huge = remote.post("/login", data={"key": "x" * (2 << 20)})
    assert huge.status_code == 413 and 'data-code="body_too_large"' in huge.text
    many = remote.post("/login", data={f"f{i}": "x" for i in range(100)})
    assert many.status_code == 400 and "more than 20 fields" in many.text
