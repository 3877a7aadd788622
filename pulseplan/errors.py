"""Exceptions: the ones provider plugins raise, and the ones the HTTP API turns into JSON.

Messages never carry token material: provider errors hold the provider's error *code* and a
short description; callers format them, they never interpolate tokens or response bodies.
"""

from __future__ import annotations


class PulsePlanError(Exception):
    """Base class for every error PulsePlan raises on purpose."""


# --------------------------------------------------------------------------- provider errors


class ProviderError(PulsePlanError):
    """A provider operation failed. Plugins raise one of the three subclasses.

    :param message: a short human description; never include tokens or raw response bodies.
    :param provider: the provider name, filled in by the host when the plugin leaves it out.
    :param error: the provider's machine error code (``invalid_grant``, ``AADSTS70008``...).
    :param description: the provider's ``error_description``, kept out of ``str(exc)``.
    :param status: the HTTP status of the failed provider response, when there was one.
    """

    kind = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        error: str | None = None,
        description: str | None = None,
        status: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.error = error
        self.description = description
        self.status = status

    def __str__(self) -> str:
        prefix = f"{self.provider}: " if self.provider else ""
        code = f" ({self.error})" if self.error else ""
        return f"{prefix}{self.message}{code}"


class ReconnectRequired(ProviderError):
    """The grant is gone (``invalid_grant`` and equivalents): the user must consent again."""

    kind = "reconnect_required"


class ProviderMisconfigured(ProviderError):
    """The operator must act (``invalid_client``, a disabled key, a wrong redirect URI)."""

    kind = "provider_misconfigured"


class ProviderUnavailable(ProviderError):
    """A transient failure (5xx, 429, timeout). Retry later; the grant is still good.

    :param retry_after: seconds the provider asked us to wait, when it said so.
    """

    kind = "provider_unavailable"

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        error: str | None = None,
        description: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(
            message, provider=provider, error=error, description=description, status=status
        )
        self.retry_after = retry_after


# --------------------------------------------------------------------------- host errors


class ConfigurationError(PulsePlanError):
    """Configuration is invalid. ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class PluginError(PulsePlanError):
    """A plugin could not be loaded or breaks the plugin contract. Stops start-up."""


# --------------------------------------------------------------------------- HTTP errors


class ApiError(PulsePlanError):
    """An error the API reports as ``{"detail", "code", "request_id"}`` with ``status``."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}
        self.extra = extra or {}


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"

    def __init__(self, detail: str, *, code: str | None = None, **kwargs: object) -> None:
        headers = {"WWW-Authenticate": 'Bearer realm="pulseplan"'}
        super().__init__(detail, code=code, headers=headers, **kwargs)  # type: ignore[arg-type]


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class TooManyRequests(ApiError):
    status = 429
    code = "rate_limited"


class ServiceUnavailable(ApiError):
    status = 503
    code = "service_unavailable"


class FlowWriteUncertain(Exception):
    """A pending-flow write failed after it was sent (a Redis timeout): it may have been applied.

    The key must not be written anywhere else, or two stores could each hold a copy that can be
    taken once. The OAuth flow service retries under a fresh random secret instead.
    """
