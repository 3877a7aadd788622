"""Requests to Google's token, tokeninfo and revocation endpoints.

Requests are built and sent by the host's standard client (its client authentication, shared
HTTP pool and timeouts); only the reading of failures is Google's own (:mod:`.errors`),
because the standard classifier cannot see the ``reason`` of a 403 rate limit.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx

from pulseplan import ProviderContext
from pulseplan import ProviderUnavailable
from pulseplan import json_object
from pulseplan_google.errors import classify
from pulseplan_google.spec import NAME

FORM = "application/x-www-form-urlencoded"


async def token_call(
    provider: ProviderContext, fields: dict[str, str], *, operation: str
) -> dict[str, Any]:
    """POST ``fields`` to the token endpoint through the host's standard client, failures read
    by :func:`~pulseplan_google.errors.classify`.

    :return: the decoded token response.
    :raises ProviderError: classified failure.
    """
    return await provider.standard.post_token(fields, operation=operation, classifier=classify)


async def tokeninfo(provider: ProviderContext, url: str, access_token: str) -> httpx.Response:
    """POST the access token to tokeninfo in a form body, never in the URL (where proxies and
    access logs would keep it). Transport failures become :class:`ProviderUnavailable`."""
    request = provider.http.build_request(
        "POST",
        url,
        headers={"Accept": "application/json", "Content-Type": FORM},
        content=urlencode({"access_token": access_token}),
    )
    return await provider.standard.send(request, operation="tokeninfo")


def tokeninfo_result(response: httpx.Response) -> dict[str, Any]:
    """The decoded tokeninfo answer of a 2xx response."""
    data = json_object(response)
    if data is None:
        raise ProviderUnavailable("tokeninfo returned a non-JSON body", provider=NAME)
    return data


async def revoke(provider: ProviderContext, url: str, token: str) -> httpx.Response:
    """RFC 7009 revocation as Google documents it: a form body with ``token`` and nothing else.

    Google's endpoint needs no client authentication, so the client secret is not sent to it.
    """
    request = provider.http.build_request(
        "POST",
        url,
        headers={"Accept": "application/json", "Content-Type": FORM},
        content=urlencode({"token": token}),
    )
    return await provider.standard.send(request, operation="revocation")
