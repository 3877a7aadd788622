"""The current request's verified user JWT, for storage backends that forward it.

The :class:`~pulseplan.storage.base.Storage` interface passes a ``user_id``, not a credential.
The Supabase REST backend (:mod:`pulseplan.storage.supabase_rest`) wants the credential: with
the user's own JWT in ``Authorization``, PostgREST runs the query as role ``authenticated``
with that user's claims, so row-level security (``auth.uid() = user_id``) decides what the
query may see, not only the ``user_id`` filter PulsePlan adds.

The auth guard (:func:`pulseplan.auth.guard.require_user`) binds the bearer token it has just
verified around the route handler::

    with forward_user_jwt(user.id, token):
        return await handler()

A context variable carries it, so it follows the request through ``await`` and into tasks the
handler starts (they copy the context), and is gone when the handler returns. Code that runs
outside a user's request (background refresh, the OAuth callback, agents) has none bound, and
the REST backend then uses the service key. Only the stdlib is imported here: the guard imports
this module, and the storage package imports the auth package.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from dataclasses import field


@dataclass(frozen=True)
class ForwardedJwt:
    """A verified user access token and the user it belongs to (the token is never in repr)."""

    user_id: str
    token: str = field(repr=False)


_CURRENT: ContextVar[ForwardedJwt | None] = ContextVar("pulseplan_forwarded_jwt", default=None)


@contextmanager
def forward_user_jwt(user_id: str, token: str) -> Iterator[ForwardedJwt]:
    """Bind ``token`` (already verified, belonging to ``user_id``) for the enclosed code.

    Bindings nest; leaving the block restores whatever was bound before.
    """
    bound = ForwardedJwt(user_id, token)
    reset = _CURRENT.set(bound)
    try:
        yield bound
    finally:
        _CURRENT.reset(reset)


def forwarded_user_jwt() -> ForwardedJwt | None:
    """The JWT bound by :func:`forward_user_jwt` in this context, or ``None``."""
    return _CURRENT.get()


__all__ = ["ForwardedJwt", "forward_user_jwt", "forwarded_user_jwt"]
