"""Where the browser may be sent back after an OAuth flow: only to ``ALLOWED_RETURN_URLS``.

An entry allows its exact URL, or every path under it when it ends with ``/``. Scheme, host and
port must match exactly; user-info, backslashes, control characters and non-http(s) schemes are
refused, so ``//evil.example``, ``/\\evil.example`` and ``javascript:`` never pass.
"""

from __future__ import annotations

from urllib.parse import SplitResult
from urllib.parse import parse_qsl
from urllib.parse import unquote
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from pulseplan.errors import BadRequest

DOT_SEGMENTS = frozenset({".", ".."})


def _parse(url: str) -> tuple[SplitResult, tuple[str, str, int]] | None:
    """The URL and its (scheme, host, port) origin, or ``None`` when it is not acceptable."""
    if any(ord(ch) < 0x21 or ch == "\\" for ch in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a bad port, a broken IPv6 literal, an NFKC-unsafe host
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    # Dot segments would let an allowed prefix reach another path once a browser resolves them.
    if any(segment in DOT_SEGMENTS for segment in unquote(parts.path).split("/")):
        return None
    default = 443 if parts.scheme == "https" else 80
    return parts, (parts.scheme, parts.hostname.lower(), port or default)


def allowed(url: str, allow_list: list[str]) -> bool:
    """Whether ``url`` matches an entry of ``allow_list``."""
    parsed = _parse(url)
    if parsed is None:
        return False
    parts, origin = parsed
    for entry in allow_list:
        base = _parse(entry)
        if base is None or base[1] != origin:
            continue
        path = parts.path or "/"
        base_path = base[0].path or "/"
        if path == base_path or (base_path.endswith("/") and path.startswith(base_path)):
            return True
    return False


def choose(return_url: str | None, allow_list: list[str]) -> str | None:
    """The return URL for a new flow: the requested one if allowed, else the first entry.

    :raises BadRequest: a requested URL that is not on the allow-list.
    """
    if return_url is None:
        return allow_list[0] if allow_list else None
    if not allowed(return_url, allow_list):
        raise BadRequest("return_url is not in ALLOWED_RETURN_URLS", code="return_url_not_allowed")
    return return_url


def with_params(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` added to its query (existing ones kept)."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))
