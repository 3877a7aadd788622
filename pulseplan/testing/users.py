"""Mint Supabase-style user JWTs that a test PulsePlan accepts (HS256 with the settings'
``SUPABASE_JWT_SECRET``)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from pulseplan.settings import Settings


def user_token(settings: Settings, user_id: str | None = None, **claims: Any) -> str:
    """A signed access token for ``user_id`` (a new UUID when omitted).

    :param claims: extra or replacement claims; ``None`` removes one.
    """
    secret = settings.secret("supabase_jwt_secret")
    if not secret:
        raise ValueError("settings have no SUPABASE_JWT_SECRET to sign test tokens with")
    now = int(time.time())
    payload: dict[str, Any] = {
        "aud": settings.supabase_jwt_audience,
        "exp": now + 3600,
        "iat": now,
        "sub": user_id or str(uuid.uuid4()),
        "role": "authenticated",
        "email": "user@example.test",
    }
    if settings.supabase_url:
        payload["iss"] = f"{settings.supabase_url.rstrip('/')}/auth/v1"
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, "HS256")
