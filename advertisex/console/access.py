"""Who may use the console and the read API, and the browser-side defences.

- **Keys.** Bound to loopback, no key is asked (as for the collector): whoever can reach
  the port is on this machine, and may do everything. Bound anywhere else, every page
  and endpoint needs a console key (``console.keys``: SHA-256 only, separate from the
  ingest keys) whose scope is ``read``, or ``admin`` for quarantine replay. Scripts send
  ``Authorization: Bearer <key>``; a browser signs in once on ``/login`` and gets a
  session cookie signed by itsdangerous with a per-process secret (a restart signs
  everyone out), ``Secure``, ``HttpOnly``, ``SameSite=Strict`` and ``__Host-`` named.
- **CSRF.** Every form POST carries the token of the ``csrf`` cookie (double submit;
  the cookie is ``SameSite=Strict``) and must come from this origin. JSON POSTs to the
  API must say ``Content-Type: application/json``, which no cross-site page can send
  without a CORS preflight — and this server answers no preflight (no CORS at all).
- **DNS rebinding.** Bound to loopback, only loopback ``Host`` names are served, so a
  web page whose name resolves to 127.0.0.1 cannot read the console.
- **Headers.** A Content-Security-Policy that allows scripts and styles from this origin
  only (no inline script, no ``eval``), no framing, no referrer to other sites, no sniffing, no caching.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from advertisex.collector.access import is_loopback, presented_key
from advertisex.collector.responses import ApiError
from advertisex.config import ConsoleSettings

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # with no-referrer, browsers send "Origin: null"
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
SCOPES = ("read", "admin")
# Reachable without a key: the sign-in page and the static files it uses.
OPEN_PATHS = ("/login", "/static/")


@dataclass(frozen=True)
class Principal:
    name: str
    scope: str

    def may(self, scope: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(scope)


LOCAL = Principal("local", "admin")


class Access:
    """The console's gatekeeper for one listening address."""

    def __init__(self, config: ConsoleSettings, bind_host: str) -> None:
        from itsdangerous import URLSafeTimedSerializer

        self.config = config
        self.loopback = is_loopback(bind_host)
        self.required = not self.loopback
        self._keys = {k.sha256.strip().lower(): Principal(k.name, k.scope) for k in config.keys}
        self._signer = URLSafeTimedSerializer(secrets.token_bytes(32), salt="advertisex-console")
        prefix = "__Host-" if self.required else ""  # __Host-: Secure, path /, no domain
        self.session_cookie = prefix + "adx_session"
        self.csrf_cookie = prefix + "adx_csrf"

    # ------------------------------------------------------------------ identity
    def key_principal(self, key: str) -> Principal | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        for known, principal in self._keys.items():
            if hmac.compare_digest(known, digest):
                return principal
        return None

    def principal(self, request: Request) -> Principal | None:
        """Who sent ``request``: LOCAL on loopback, else by bearer key or session cookie."""
        if not self.required:
            return LOCAL
        authorization = request.headers.get("authorization")
        if authorization:
            key = presented_key(request.headers)
            return self.key_principal(key) if key else None
        cookie = request.cookies.get(self.session_cookie)
        if not cookie:
            return None
        from itsdangerous import BadSignature

        try:
            name, scope = self._signer.loads(cookie, max_age=int(self.config.session_hours * 3600))
        except (BadSignature, ValueError, TypeError):
            return None
        return Principal(name, scope) if scope in SCOPES else None

    def session(self, principal: Principal) -> str:
        return str(self._signer.dumps([principal.name, principal.scope]))

    def set_cookie(self, response: Response, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            max_age=int(self.config.session_hours * 3600),
            path="/",
            secure=self.required,
            httponly=True,
            samesite="strict",
        )

    # ------------------------------------------------------------------ checks
    def host_allowed(self, request: Request) -> bool:
        if not self.loopback:
            return True
        host = request.headers.get("host", "")
        name = urlsplit(f"//{host}").hostname or ""
        return is_loopback(name)

    def check_form(self, request: Request, form_token: str | None) -> None:
        """A state-changing form POST: same origin, and the CSRF token of its cookie."""
        origin_ok = _same_origin(request)
        cookie = request.cookies.get(self.csrf_cookie, "")
        if not origin_ok or not cookie or not hmac.compare_digest(cookie, form_token or ""):
            raise ApiError(
                403,
                "csrf_failed",
                "this form is stale or came from another site; reload the page and try again",
            )


def _same_origin(request: Request) -> bool:
    """Whether a browser says the request comes from a page of this site (clients that
    say nothing pass: the CSRF token still decides). Compared by host and port, since a
    TLS proxy in front changes the scheme the server sees."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":  # privacy settings hide it; Sec-Fetch-Site still tells
        return site == "same-origin"
    return urlsplit(origin).netloc == request.headers.get("host", "")


class Gate(BaseHTTPMiddleware):
    """Host check, sign-in, CSRF cookie and security headers around every console request."""

    def __init__(self, app: object, access: Access) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.access = access

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        access = self.access
        path = request.url.path
        api = path.startswith("/api/") or path in ("/openapi.json",)
        if not access.host_allowed(request):
            response: Response = ApiError(
                421, "host_refused", "this console answers on loopback names only"
            ).response()
        else:
            principal = access.principal(request)
            request.state.principal = principal
            token = request.cookies.get(access.csrf_cookie)
            request.state.csrf = token or secrets.token_urlsafe(24)
            if principal is None and not path.startswith(OPEN_PATHS):
                response = _sign_in_needed(request, api)
            else:
                response = await call_next(request)
            if not token and not api:
                access.set_cookie(response, access.csrf_cookie, request.state.csrf)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        static = path.startswith("/static/")
        response.headers.setdefault("Cache-Control", "max-age=3600" if static else "no-store")
        elapsed = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={elapsed:.1f}"  # bench/console.py reads it
        return response


def _sign_in_needed(request: Request, api: bool) -> Response:
    if api or "text/html" not in request.headers.get("accept", ""):
        return ApiError(
            401,
            "unauthorized",
            "a console key is required: send 'Authorization: Bearer <key>' "
            "(keys with read or admin scope: `advertisex keygen --scope read`)",
            {"WWW-Authenticate": 'Bearer realm="advertisex"'},
        ).response()
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    from urllib.parse import quote

    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
