"""The least a pixel or redirect server can do: answer the GIF or the 302, nothing stored.

The reference ceiling for bench/wire.py, run on the same uvicorn + uvloop + httptools
stack as the collector: ``uvicorn wire_ceiling:app --loop uvloop --http httptools``.
"""

GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
_GIF_HEADERS = [
    (b"content-type", b"image/gif"),
    (b"content-length", b"43"),
    (b"cache-control", b"no-store, no-cache, must-revalidate, max-age=0, private"),
]
_REDIRECT_HEADERS = [(b"location", b"https://shop.example/"), (b"content-length", b"0")]


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    if scope["path"] == "/v1/c":
        await send({"type": "http.response.start", "status": 302, "headers": _REDIRECT_HEADERS})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": _GIF_HEADERS})
    await send({"type": "http.response.body", "body": GIF})
