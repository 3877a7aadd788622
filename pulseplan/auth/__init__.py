"""Caller authentication: Supabase user JWTs and agent credentials (DESIGN.md §6, invariant 6).

Modules: :mod:`~pulseplan.auth.errors` (the error and its codes), :mod:`~pulseplan.auth.jwks`
(signing-key cache), :mod:`~pulseplan.auth.verifier` (JWT verification),
:mod:`~pulseplan.auth.agents` (agent secrets and their store), :mod:`~pulseplan.auth.principals`
(:class:`User`, :class:`Agent`) and :mod:`~pulseplan.auth.guard` (Quart decorators).
"""

from __future__ import annotations

from pulseplan.auth.agents import AgentRecord
from pulseplan.auth.agents import AgentStore
from pulseplan.auth.agents import DuplicateAgent
from pulseplan.auth.agents import authenticate_agent
from pulseplan.auth.agents import create_agent
from pulseplan.auth.errors import AuthError
from pulseplan.auth.guard import current_agent
from pulseplan.auth.guard import current_user
from pulseplan.auth.guard import init_app
from pulseplan.auth.guard import require_agent
from pulseplan.auth.guard import require_user
from pulseplan.auth.jwks import JwksCache
from pulseplan.auth.principals import Agent
from pulseplan.auth.principals import User
from pulseplan.auth.verifier import JwtVerifier

__all__ = [
    "Agent",
    "AgentRecord",
    "AgentStore",
    "AuthError",
    "DuplicateAgent",
    "JwksCache",
    "JwtVerifier",
    "User",
    "authenticate_agent",
    "create_agent",
    "current_agent",
    "current_user",
    "init_app",
    "require_agent",
    "require_user",
]
