"""Who is calling: a signed-in :class:`User` or an :class:`Agent` acting for users.

Both are frozen and hold no credential: they are safe to log, cache and pass around.
"""

from __future__ import annotations

from dataclasses import dataclass

from pulseplan.auth.errors import AuthError


@dataclass(frozen=True)
class User:
    """A Supabase user, from a verified access token.

    :param id: the user's UUID in canonical lower-case form (the token's ``sub``).
    :param email: the ``email`` claim, when the token has one.
    :param role: always ``"authenticated"`` for a user token; kept for symmetry with Supabase.
    :param session_id: the Supabase session (``session_id`` claim), for audit trails.
    :param is_anonymous: Supabase anonymous sign-in (only seen when the operator allows it).
    """

    id: str
    email: str | None
    role: str
    session_id: str | None = None
    is_anonymous: bool = False


@dataclass(frozen=True)
class Agent:
    """An AI agent authenticated by its own credential (``pulseplan agents create``).

    :param providers: the providers it may fetch tokens for; ``None`` means every provider.
    """

    id: str
    name: str
    providers: tuple[str, ...] | None = None

    def may_access(self, provider: str) -> bool:
        """Whether this agent may fetch tokens of ``provider``."""
        return self.providers is None or provider.lower() in self.providers

    def check_access(self, provider: str) -> None:
        """Raise a 403 :class:`AuthError` (``provider_not_allowed``) unless :meth:`may_access`."""
        if not self.may_access(provider):
            raise AuthError("provider_not_allowed")
