"""The host's standard OAuth 2.0 client: RFC 6749 code exchange and refresh, RFC 7636 PKCE S256
and RFC 7009 revocation, built from Authlib's protocol pieces.

Authlib prepares the requests (grant URI, token request body, client authentication, PKCE
challenge, token expiry); the bytes go out through the host's shared ``httpx.AsyncClient`` so
every provider shares one connection pool and one timeout policy. Responses are classified here
into :class:`ReconnectRequired`, :class:`ProviderMisconfigured` and :class:`ProviderUnavailable`
because Authlib's own client loses the HTTP status and accepts error bodies that lack an
``error`` key (Notion's shape) as tokens.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import quote_plus
from urllib.parse import urlsplit

import httpx
import jwt
from authlib.common.urls import add_params_to_qs
from authlib.common.urls import url_decode
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from loguru import logger

from pulseplan.errors import ProviderError
from pulseplan.errors import ProviderMisconfigured
from pulseplan.errors import ProviderUnavailable
from pulseplan.errors import ReconnectRequired
from pulseplan.provider import ProviderSettings
from pulseplan.provider import ProviderSpec
from pulseplan.provider import Revocation
from pulseplan.provider import TokenSet
from pulseplan.provider import Validation

#: ``error`` values (or Notion ``code`` values) meaning the user must consent again.
RECONNECT_ERRORS = frozenset(
    {
        "invalid_grant",
        "interaction_required",
        "consent_required",
        "login_required",
        "admin_policy_enforced",
        "invalid_rapt",
        "rapt_required",
    }
)
#: Errors that are the operator's to fix.
CONFIG_ERRORS = frozenset(
    {
        "invalid_client",
        "unauthorized_client",
        "deleted_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_request",
        "unsupported_response_type",
    }
)
#: Errors that are worth retrying later.
TRANSIENT_ERRORS = frozenset(
    {
        "temporarily_unavailable",
        "server_error",
        "internal_failure",
        "internal_server_error",
        "rate_limited",
        "service_overload",
        "service_unavailable",
        "gateway_timeout",
    }
)
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 529})
MAX_LIFETIME = 10 * 365 * 24 * 3600
#: A plugin's own failure reading: ``classifier(response, operation=...) -> ProviderError``.
Classifier = Callable[..., ProviderError]


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Parse ``Retry-After`` (delta seconds only; HTTP dates are rare for OAuth endpoints)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The response body as a JSON object, or ``None`` when it is not JSON or not an object
    (providers answer HTML error pages and plain text too)."""
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def parse_error_body(response: httpx.Response) -> tuple[str | None, str | None]:
    """Return ``(error, description)`` from an RFC 6749 or Notion-style error body.

    A 3xx carries them in the ``Location`` query (old Canvas ``redirect_uri`` behaviour).
    """
    if response.is_redirect:
        query = parse_qs(urlsplit(response.headers.get("location", "")).query)
        error = query.get("error", [None])[0]
        return error, query.get("error_description", [None])[0]
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        # Plain-text errors (Canvas's 403 "Rate Limit Exceeded") still say something useful.
        text = response.text.strip()[:200]
        return None, text or None
    if not isinstance(body, dict):
        return None, None
    error = body.get("error") or body.get("code")
    description = body.get("error_description") or body.get("message")
    subtype = body.get("error_subtype")
    if isinstance(subtype, str) and subtype in RECONNECT_ERRORS:
        error = subtype
    return (error if isinstance(error, str) else None), (
        description[:200] if isinstance(description, str) else None
    )


def classify(response: httpx.Response, *, provider: str, operation: str) -> ProviderError:
    """Map a failed provider response to the right exception (providers.md §6)."""
    error, description = parse_error_body(response)
    status = response.status_code
    message = f"{operation} failed with HTTP {status}"
    kwargs: dict[str, Any] = {
        "provider": provider,
        "error": error or f"http_{status}",
        "description": description,
        "status": status,
    }
    if error in TRANSIENT_ERRORS or status in TRANSIENT_STATUS:
        return ProviderUnavailable(message, retry_after=retry_after_seconds(response), **kwargs)
    if error in RECONNECT_ERRORS:
        return ReconnectRequired(message, **kwargs)
    # invalid_client and friends, unknown 4xx, redirects: nobody but the operator can fix it.
    return ProviderMisconfigured(message, **kwargs)


def expires_at_from(data: dict[str, Any], now: datetime | None = None) -> datetime | None:
    """Compute an aware expiry from ``expires_in`` (seconds; ints or numeric strings)."""
    raw = data.get("expires_in")
    if raw is None or raw == "":
        return None
    try:
        seconds = int(float(raw))
    except (TypeError, ValueError):
        return None
    # Clamp: a provider (or a fake) answering expires_in=1e15 must not overflow datetime.
    return (now or datetime.now(UTC)) + timedelta(seconds=min(max(seconds, 0), MAX_LIFETIME))


class StandardOAuth2:
    """RFC 6749/7636/7009 behaviour for one provider; plugins delegate to it for the standard
    parts and override only their quirks.

    :param spec: the provider's description.
    :param settings: its resolved settings.
    :param http: the host's shared HTTP client.
    """

    def __init__(self, spec: ProviderSpec, settings: ProviderSettings, http: httpx.AsyncClient):
        self.spec = spec
        self.settings = settings
        self.http = http

    # ------------------------------------------------------------------ authorization

    def authorization_url(
        self,
        *,
        state: str,
        redirect_uri: str,
        scopes: tuple[str, ...],
        code_verifier: str | None,
        extra_params: dict[str, str] | None = None,
    ) -> str:
        """Build the authorization URL, with the S256 challenge when a verifier is given."""
        params: dict[str, str] = dict(self.spec.extra_authorize_params)
        params.update(extra_params or {})
        if code_verifier is not None:
            params["code_challenge"] = create_s256_code_challenge(code_verifier)
            params["code_challenge_method"] = "S256"
        url: str = prepare_grant_uri(
            self.settings.authorize_url,
            client_id=self.settings.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=self.spec.scope_separator.join(scopes) if scopes else None,
            state=state,
            **params,
        )
        return url

    # ------------------------------------------------------------------ token endpoint

    def basic_auth(self) -> str:
        """``Authorization: Basic`` value with RFC 6749 §2.3.1 form-encoding of the credentials
        (Authlib's encoder skips it, which breaks secrets with reserved or non-Latin-1 characters).
        """
        pair = f"{quote_plus(self.settings.client_id or '')}:"
        pair += quote_plus(self.settings.client_secret or "")
        return "Basic " + base64.b64encode(pair.encode()).decode()

    def client_request(self, url: str, fields: dict[str, str]) -> httpx.Request:
        """A POST to a client-authenticated endpoint (token, revocation) in the provider's body
        format and client-authentication method, with the provider's extra headers."""
        headers = {"Accept": "application/json", **self.spec.request_headers}
        if self.spec.token_request_format == "json":
            # JSON providers (Notion) authenticate with Basic; Authlib only speaks form bodies.
            headers["Authorization"] = self.basic_auth()
            return self.http.build_request("POST", url, headers=headers, json=fields)
        body = add_params_to_qs("", list(fields.items()))
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.spec.client_auth == "client_secret_basic":
            headers["Authorization"] = self.basic_auth()
        else:
            auth = ClientAuth(
                self.settings.client_id, self.settings.client_secret, self.spec.client_auth
            )
            _, headers, body = auth.prepare("POST", url, headers, body)
        return self.http.build_request("POST", url, headers=headers, content=body)

    async def token_request(self, grant_type: str, **params: str | None) -> dict[str, Any]:
        """POST to the token endpoint with the provider's client auth and body format.

        :return: the decoded JSON object of a successful response.
        :raises ProviderError: classified failure.
        """
        fields = dict(
            url_decode(prepare_token_request(grant_type, **{k: v for k, v in params.items() if v}))
        )
        return await self.post_token(fields, operation=f"{grant_type} grant")

    async def post_token(
        self,
        fields: dict[str, str],
        *,
        operation: str,
        classifier: Classifier | None = None,
    ) -> dict[str, Any]:
        """POST ``fields`` to the token endpoint (client auth, body format, shared client).

        :param classifier: the plugin's reading of failures (Google's 403 reasons, Microsoft's
            AADSTS codes), called as ``classifier(response, operation=...)``; the standard
            :func:`classify` when omitted.
        :raises ProviderError: classified failure.
        """
        request = self.client_request(self.settings.token_url, fields)
        response = await self.send(request, operation=operation)
        return self.token_response(response, operation=operation, classifier=classifier)

    def token_response(
        self, response: httpx.Response, *, operation: str, classifier: Classifier | None = None
    ) -> dict[str, Any]:
        """Decode a token-endpoint response or raise the classified error."""

        def failure() -> ProviderError:
            if classifier is not None:
                return classifier(response, operation=operation)
            return classify(response, provider=self.spec.name, operation=operation)

        if not response.is_success:
            raise failure()
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ProviderUnavailable(
                f"{operation} returned a non-JSON body", provider=self.spec.name
            ) from None
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"{operation} returned no object", provider=self.spec.name)
        if data.get("error") or data.get("object") == "error":
            raise failure()
        if not isinstance(data.get("access_token"), str) or not data["access_token"]:
            raise ProviderMisconfigured(
                f"{operation} returned no access_token", provider=self.spec.name
            )
        return data

    async def send(self, request: httpx.Request, *, operation: str) -> httpx.Response:
        """Send a request; network failures and timeouts become :class:`ProviderUnavailable`."""
        try:
            # Never follow: a token endpoint answering 3xx is an error (old Canvas), not a hop.
            return await self.http.send(request, follow_redirects=False)
        except httpx.TimeoutException:
            raise ProviderUnavailable(
                f"{operation} timed out", provider=self.spec.name, error="timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(
                f"{operation} failed: {type(exc).__name__}",
                provider=self.spec.name,
                error="network",
            ) from None

    def token_set(self, data: dict[str, Any], *, requested: tuple[str, ...] = ()) -> TokenSet:
        """Turn a token response into a :class:`TokenSet`: granted scopes, expiry, email."""
        scope = data.get("scope")
        scopes: tuple[str, ...] | None = None
        if isinstance(scope, str):
            sep = self.spec.scope_separator if self.spec.scope_separator in scope else " "
            scopes = tuple(s for s in scope.split(sep) if s)
        elif isinstance(scope, list):
            scopes = tuple(str(s) for s in scope)
        refresh = data.get("refresh_token")
        return TokenSet(
            access_token=data["access_token"],
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_at=expires_at_from(data),
            scopes=scopes if scopes is not None else (requested or None),
            email=self.id_token_email(data.get("id_token")),
        )

    def id_token_email(self, id_token: object) -> str | None:
        """Email claim of an ID token received directly from the token endpoint over TLS.

        OIDC Core §3.1.3.7 lets a client rely on TLS instead of the signature for an ID token
        it fetched itself; the audience must still be this client.
        """
        if not isinstance(id_token, str):
            return None
        try:
            claims = jwt.decode(id_token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.settings.client_id not in audiences:
            return None
        email = claims.get("email")
        return email if isinstance(email, str) else None

    async def exchange_code(
        self,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str | None,
        requested: tuple[str, ...] = (),
    ) -> TokenSet:
        """Exchange an authorization code (RFC 6749 §4.1.3), then look up the email if needed."""
        data = await self.token_request(
            "authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
        )
        tokens = self.token_set(data, requested=requested)
        if tokens.email is None and self.settings.userinfo_url:
            # The code is spent: a failed identity lookup must not throw the new grant away.
            try:
                info = await self.userinfo(tokens.access_token)
            except ProviderError as exc:
                logger.warning(
                    "{} identity lookup failed ({}); email unknown", self.spec.name, exc.error
                )
                info = {}
            email = info.get("email") or info.get("mail") or info.get("userPrincipalName")
            tokens.email = email if isinstance(email, str) else None
        return tokens

    async def refresh(self, *, refresh_token: str, scopes: tuple[str, ...] = ()) -> TokenSet:
        """Refresh (RFC 6749 §6). A response without ``refresh_token`` yields ``None`` there,
        which the host reads as "keep the old one"."""
        data = await self.token_request("refresh_token", refresh_token=refresh_token)
        return self.token_set(data, requested=scopes)

    # ------------------------------------------------------------------ resource calls

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        """GET the userinfo/identity endpoint with the bearer token."""
        if not self.settings.userinfo_url:
            raise ProviderMisconfigured("no userinfo endpoint configured", provider=self.spec.name)
        request = self.http.build_request(
            "GET",
            self.settings.userinfo_url,
            headers={
                "Authorization": f"Bearer {access_token}",
                "Accept": "application/json",
                **self.spec.request_headers,
            },
        )
        response = await self.send(request, operation="userinfo")
        if not response.is_success:
            raise classify(response, provider=self.spec.name, operation="userinfo")
        return json_object(response) or {}

    async def validate(self, *, access_token: str) -> Validation:
        """Validate by calling the userinfo endpoint: 2xx valid, 401 invalid.

        A 403 is not proof of a dead token (missing scope, or Canvas's throttling), so it is
        raised as the classified error for the caller to report.
        """
        try:
            info = await self.userinfo(access_token)
        except ProviderUnavailable:
            raise
        except ProviderError as exc:
            if exc.status == 401:
                return Validation(valid=False, detail="provider answered HTTP 401")
            raise
        email = info.get("email") or info.get("mail")
        return Validation(valid=True, email=email if isinstance(email, str) else None)

    async def revoke(self, *, access_token: str | None, refresh_token: str | None) -> Revocation:
        """RFC 7009 revocation, preferring the refresh token (it ends the whole grant)."""
        if not self.settings.revoke_url:
            return Revocation(
                revoked=False,
                supported=False,
                detail=f"{self.spec.display_name} has no revocation endpoint; deleted locally",
            )
        token, hint = (
            (refresh_token, "refresh_token") if refresh_token else (access_token, "access_token")
        )
        if not token:
            return Revocation(revoked=False, detail="no token to revoke")
        fields = {"token": token}
        if self.spec.token_request_format == "form":
            fields["token_type_hint"] = hint
        request = self.client_request(self.settings.revoke_url, fields)
        response = await self.send(request, operation="revocation")
        if response.is_success:
            return Revocation(revoked=True)
        error = classify(response, provider=self.spec.name, operation="revocation")
        if isinstance(error, ProviderUnavailable):
            raise error
        # RFC 7009 §2.2: an invalid token is not an error for the client; the grant is gone.
        if error.error in ("invalid_token", "invalid_grant"):
            return Revocation(revoked=True, detail="provider reports the token already invalid")
        raise error
