"""JWT verification (security-checklist.md §3.4, C3.1-C3.16): tokens minted here with test
keys; ES256/RS256 keys come from a JWKS served over loopback HTTP."""

from __future__ import annotations

import base64
import json
import secrets
import time
import warnings
from collections.abc import AsyncIterator
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from jwt.warnings import InsecureKeyLengthWarning

from pulseplan.auth.errors import AuthError
from pulseplan.auth.jwks import JwksCache
from pulseplan.auth.principals import User
from pulseplan.auth.verifier import JwtVerifier
from pulseplan.errors import ConfigurationError
from tests.auth_fakes import USER_ID
from tests.auth_fakes import FakeClock
from tests.auth_fakes import JwksServer
from tests.auth_fakes import b64url
from tests.auth_fakes import public_jwk
from tests.auth_fakes import sign_raw
from tests.auth_fakes import signing_keys
from tests.auth_fakes import unsigned
from tests.auth_fakes import user_claims

SECRET = b"legacy-hs256-secret-for-tests-0123456789abcdef"
LEEWAY = 30


@pytest.fixture
def server() -> Iterator[JwksServer]:
    jwks = JwksServer(signing_keys().jwks())
    yield jwks
    jwks.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_verifier(
    server: JwksServer, clock: FakeClock, *, secret: bytes | None = SECRET, **kwargs: Any
) -> JwtVerifier:
    return JwtVerifier(
        hs256_secret=secret,
        jwks=JwksCache(server.url, ttl=600, min_refetch=60, clock=clock),
        audience="authenticated",
        issuer=server.issuer,
        leeway=LEEWAY,
        **kwargs,
    )


@pytest.fixture
async def verifier(server: JwksServer, clock: FakeClock) -> AsyncIterator[JwtVerifier]:
    verifier = make_verifier(server, clock)
    yield verifier
    await verifier.aclose()


@pytest.fixture
def claims(server: JwksServer) -> Any:
    def make(**overrides: Any) -> dict[str, Any]:
        return user_claims(server.issuer, **overrides)

    return make


def hs256(claims: dict[str, Any], key: bytes = SECRET, **headers: Any) -> str:
    return jwt.encode(claims, key, algorithm="HS256", headers=headers or None)


def es256(claims: dict[str, Any], kid: str = "ec-1", **headers: Any) -> str:
    return jwt.encode(claims, signing_keys().ec, algorithm="ES256", headers={"kid": kid, **headers})


def rs256(claims: dict[str, Any], kid: str = "rsa-1") -> str:
    return jwt.encode(claims, signing_keys().rsa, algorithm="RS256", headers={"kid": kid})


async def rejected(verifier: JwtVerifier, token: str, code: str, status: int = 401) -> AuthError:
    """Assert ``token`` is refused with ``code``, and that the error never shows the token."""
    with pytest.raises(AuthError) as info:
        await verifier.verify(token)
    error = info.value
    assert (error.code, error.status) == (code, status)
    shown = " ".join([str(error), repr(error), error.detail, *error.headers.values()])
    for part in token.split("."):
        if len(part) >= 8:
            assert part not in shown
    return error


# --------------------------------------------------------------------------- C3.1 valid


async def test_valid_hs256(verifier: JwtVerifier, claims: Any, server: JwksServer) -> None:
    user = await verifier.verify(hs256(claims()))
    assert user == User(
        id=USER_ID,
        email="ada@example.com",
        role="authenticated",
        session_id="8d0c1c8e-0000-4000-8000-000000000001",
    )
    assert server.hits == 0  # HS256 never needs the JWKS


async def test_valid_es256_and_rs256_through_the_jwks(
    verifier: JwtVerifier, claims: Any, server: JwksServer
) -> None:
    assert (await verifier.verify(es256(claims()))).id == USER_ID
    assert (await verifier.verify(rs256(claims()))).id == USER_ID
    assert server.hits == 1


async def test_user_holds_no_token(verifier: JwtVerifier, claims: Any) -> None:
    token = es256(claims())
    user = await verifier.verify(token)
    assert token not in repr(user)
    assert set(vars(user)) == {"id", "email", "role", "session_id", "is_anonymous"}


async def test_hs256_token_with_a_kid_still_uses_the_secret(
    verifier: JwtVerifier, claims: Any, server: JwksServer
) -> None:
    # Recent GoTrue versions put a kid on HS256 tokens too; it must not send us to the JWKS.
    assert (await verifier.verify(hs256(claims(), kid="legacy"))).id == USER_ID
    assert server.hits == 0


# --------------------------------------------------------------------------- C3.2-C3.4 algorithms


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
@pytest.mark.parametrize("signature", [b"", b"\x00" * 32])
async def test_alg_none_is_refused(
    verifier: JwtVerifier, claims: Any, alg: str, signature: bytes
) -> None:
    await rejected(verifier, unsigned({"alg": alg, "typ": "JWT"}, claims(), signature),
                   "unsupported_algorithm")  # fmt: skip


async def test_header_without_alg_is_refused(verifier: JwtVerifier, claims: Any) -> None:
    await rejected(verifier, unsigned({"typ": "JWT"}, claims(), b"x"), "unsupported_algorithm")


@pytest.mark.parametrize("alg", ["HS384", "HS512", "ES384", "PS256", "EdDSA", "RS512"])
async def test_other_algorithms_are_refused(verifier: JwtVerifier, claims: Any, alg: str) -> None:
    await rejected(verifier, unsigned({"alg": alg, "kid": "ec-1"}, claims(), b"x" * 64),
                   "unsupported_algorithm")  # fmt: skip


def public_key_forms() -> dict[str, tuple[str, bytes]]:
    """The JWKS public keys as an attacker would feed them to HMAC, with the matching kid."""
    keys = signing_keys()
    ec_public = keys.ec.public_key()
    rsa_public = keys.rsa.public_key()
    pem = serialization.Encoding.PEM
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    ec_jwk = public_jwk(keys.ec, "ec-1")
    rsa_jwk = public_jwk(keys.rsa, "rsa-1")
    return {
        "ec-pem": ("ec-1", ec_public.public_bytes(pem, spki)),
        "ec-der": ("ec-1", ec_public.public_bytes(der, spki)),
        "ec-jwk-json": ("ec-1", json.dumps(ec_jwk).encode()),
        "ec-raw-x": ("ec-1", base64.urlsafe_b64decode(ec_jwk["x"] + "==")),
        "rsa-pem": ("rsa-1", rsa_public.public_bytes(pem, spki)),
        "rsa-der": ("rsa-1", rsa_public.public_bytes(der, spki)),
        "rsa-jwk-json": ("rsa-1", json.dumps(rsa_jwk).encode()),
        "rsa-raw-n": ("rsa-1", base64.urlsafe_b64decode(rsa_jwk["n"] + "==")),
    }


@pytest.mark.parametrize("form", sorted(public_key_forms()))
async def test_hs256_signed_with_the_public_key_is_refused(
    server: JwksServer, clock: FakeClock, claims: Any, form: str
) -> None:
    kid, key = public_key_forms()[form]
    token = sign_raw({"alg": "HS256", "typ": "JWT", "kid": kid}, claims(), key)
    with_secret = make_verifier(server, clock)
    without_secret = make_verifier(server, clock, secret=None)
    try:
        await rejected(with_secret, token, "bad_signature")
        await rejected(without_secret, token, "unsupported_algorithm")
    finally:
        await with_secret.aclose()
        await without_secret.aclose()


async def test_hs256_is_refused_when_legacy_mode_is_off(
    server: JwksServer, clock: FakeClock, claims: Any
) -> None:
    verifier = make_verifier(server, clock, secret=None)
    try:
        await rejected(verifier, hs256(claims()), "unsupported_algorithm")
        assert (await verifier.verify(es256(claims()))).id == USER_ID
    finally:
        await verifier.aclose()


async def test_asymmetric_tokens_are_refused_without_a_jwks(claims: Any) -> None:
    verifier = JwtVerifier(hs256_secret=SECRET, jwks=None, issuer=None)
    await rejected(verifier, es256(claims()), "unsupported_algorithm")


async def test_alg_must_match_the_key_type(verifier: JwtVerifier, claims: Any) -> None:
    # An ES256 kid named in an RS256 token (and the reverse).
    token = jwt.encode(claims(), signing_keys().rsa, algorithm="RS256", headers={"kid": "ec-1"})
    await rejected(verifier, token, "unknown_key")
    token = jwt.encode(claims(), signing_keys().ec, algorithm="ES256", headers={"kid": "rsa-1"})
    await rejected(verifier, token, "unknown_key")


async def test_asymmetric_token_without_kid_is_refused(verifier: JwtVerifier, claims: Any) -> None:
    token = jwt.encode(claims(), signing_keys().ec, algorithm="ES256")
    await rejected(verifier, token, "unknown_key")


async def test_signature_by_another_key_is_refused(verifier: JwtVerifier, claims: Any) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims(), other, algorithm="ES256", headers={"kid": "ec-1"})
    await rejected(verifier, token, "bad_signature")
    await rejected(verifier, hs256(claims(), key=b"another-secret-" * 4), "bad_signature")


async def test_psychic_signature_is_refused(verifier: JwtVerifier, claims: Any) -> None:
    """C3.16: an ECDSA signature with r = s = 0."""
    await rejected(verifier, unsigned({"alg": "ES256", "kid": "ec-1"}, claims(), b"\0" * 64),
                   "bad_signature")  # fmt: skip


async def test_tampered_payload_is_refused(verifier: JwtVerifier, claims: Any) -> None:
    header, _, signature = es256(claims()).split(".")
    forged = b64url(json.dumps(claims(sub="00000000-0000-4000-8000-000000000000")).encode())
    await rejected(verifier, f"{header}.{forged}.{signature}", "bad_signature")


async def test_weak_and_ignored_jwks_keys_never_verify(verifier: JwtVerifier, claims: Any) -> None:
    keys = signing_keys()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # that is the point
        weak = jwt.encode(claims(), keys.weak_rsa, algorithm="RS256", headers={"kid": "rsa-weak"})
    await rejected(verifier, weak, "unknown_key")
    p384 = jwt.encode(claims(), keys.p384, algorithm="ES384", headers={"kid": "ec-384"})
    await rejected(verifier, p384, "unsupported_algorithm")
    leaked = jwt.encode(claims(), keys.ec, algorithm="ES256", headers={"kid": "ec-private"})
    await rejected(verifier, leaked, "unknown_key")


async def test_oct_key_in_the_jwks_is_never_used(
    server: JwksServer, clock: FakeClock, claims: Any
) -> None:
    """C3.13: a token HS256-signed with the JWKS's own symmetric key."""
    token = hs256(claims(), key=signing_keys().oct, kid="sym-1")
    for secret in (SECRET, None):
        verifier = make_verifier(server, clock, secret=secret)
        try:
            code = "bad_signature" if secret else "unsupported_algorithm"
            await rejected(verifier, token, code)
            as_es256 = unsigned({"alg": "ES256", "kid": "sym-1"}, claims(), b"x" * 64)
            await rejected(verifier, as_es256, "unknown_key")
        finally:
            await verifier.aclose()


# --------------------------------------------------------------------------- C3.5-C3.9 claims


async def test_expired(verifier: JwtVerifier, claims: Any) -> None:
    now = int(time.time())
    await rejected(verifier, es256(claims(exp=now - LEEWAY - 5)), "expired")
    # Inside the leeway: a little clock skew is tolerated.
    assert await verifier.verify(es256(claims(exp=now - 5)))


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"exp": None}, "missing_claim"),
        ({"iat": None}, "missing_claim"),
        ({"role": None}, "missing_claim"),
        ({"exp": "9999999999"}, "malformed_token"),
        ({"exp": 9999999999.5, "iat": "1"}, "malformed_token"),
        ({"exp": True}, "expired"),
        ({"exp": [1]}, "malformed_token"),
        ({"nbf": "later"}, "malformed_token"),
    ],
)
async def test_time_claims_must_be_present_numbers(
    verifier: JwtVerifier, claims: Any, overrides: dict[str, Any], code: str
) -> None:
    await rejected(verifier, es256(claims(**overrides)), code)


async def test_not_yet_valid(verifier: JwtVerifier, claims: Any) -> None:
    now = int(time.time())
    await rejected(verifier, es256(claims(nbf=now + LEEWAY + 60)), "not_yet_valid")
    await rejected(verifier, es256(claims(iat=now + LEEWAY + 60)), "not_yet_valid")


@pytest.mark.parametrize("aud", [None, "anon", ["other"], "Authenticated", [], 5, [1]])
async def test_wrong_audience(verifier: JwtVerifier, claims: Any, aud: Any) -> None:
    await rejected(verifier, es256(claims(aud=aud)), "wrong_audience")


async def test_audience_list_containing_ours_is_accepted(
    verifier: JwtVerifier, claims: Any
) -> None:
    # Policy (RFC 7519 §4.1.3): a token may name several recipients; we must be one of them.
    assert await verifier.verify(es256(claims(aud=["authenticated", "other"])))
    assert await verifier.verify(es256(claims(aud=["authenticated"])))


async def test_configured_audience_is_used(
    server: JwksServer, clock: FakeClock, claims: Any
) -> None:
    verifier = JwtVerifier(
        hs256_secret=SECRET, jwks=None, audience="pulseplan", issuer=server.issuer
    )
    assert await verifier.verify(hs256(claims(aud="pulseplan")))
    await rejected(verifier, hs256(claims()), "wrong_audience")


@pytest.mark.parametrize(
    "iss",
    [
        None,
        "{base}",  # prefix of the expected issuer
        "{base}/auth",
        "{base}/auth/v1/",
        "{base}/auth/v1/extra",
        "http",  # the CVE-2024-53861 partial match
        "h",
        "",
        "https://other-project.supabase.co/auth/v1",
        "{https}/auth/v1",
        "supabase",
        ["{base}/auth/v1"],
    ],
)
async def test_wrong_issuer(
    verifier: JwtVerifier, claims: Any, server: JwksServer, iss: Any
) -> None:
    def fill(value: Any) -> Any:
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, str):
            https = server.base_url.replace("http://", "https://")
            return value.format(base=server.base_url, https=https)
        return value

    # Signed raw: PyJWT refuses to even encode some of these.
    token = sign_raw({"alg": "HS256", "typ": "JWT"}, claims(iss=fill(iss)), SECRET)
    await rejected(verifier, token, "wrong_issuer")


async def test_issuer_is_not_checked_when_no_supabase_url_is_configured(claims: Any) -> None:
    verifier = JwtVerifier(hs256_secret=SECRET, jwks=None, issuer=None)
    assert await verifier.verify(hs256(claims(iss=None)))


@pytest.mark.parametrize(
    "sub",
    [
        None,
        "",
        "admin",
        USER_ID.upper(),
        USER_ID.replace("-", ""),
        "{" + USER_ID + "}",
        "urn:uuid:" + USER_ID,
        USER_ID + "|other",
        USER_ID[:-1] + "/",
        USER_ID + "\x00",
        "../" + USER_ID,
        12345,
        [USER_ID],
    ],
)
async def test_subject_must_be_a_canonical_uuid(
    verifier: JwtVerifier, claims: Any, sub: Any
) -> None:
    await rejected(verifier, es256(claims(sub=sub)), "bad_subject")


@pytest.mark.parametrize("role", ["anon", "service_role", "Authenticated", "admin", ["x"]])
async def test_role_must_be_authenticated(verifier: JwtVerifier, claims: Any, role: Any) -> None:
    await rejected(verifier, es256(claims(role=role)), "not_a_user_token")
    await rejected(verifier, hs256(claims(role=role)), "not_a_user_token")


@pytest.mark.parametrize("role", ["anon", "service_role"])
async def test_project_api_keys_are_not_user_tokens(verifier: JwtVerifier, role: str) -> None:
    """C3.8: the legacy anon and service_role keys are valid JWTs signed with the HS secret."""
    now = int(time.time())
    api_key = {"iss": "supabase", "ref": "abcdefghijklmnop", "role": role, "iat": now,
               "exp": now + 10 * 365 * 86400}  # fmt: skip
    await rejected(verifier, hs256(api_key), "not_a_user_token")


async def test_anonymous_users_are_a_policy(
    server: JwksServer, clock: FakeClock, claims: Any
) -> None:
    token = es256(claims(is_anonymous=True))
    strict = make_verifier(server, clock)
    lenient = make_verifier(server, clock, allow_anonymous=True)
    try:
        error = await rejected(strict, token, "anonymous_user", status=403)
        assert "insufficient_scope" in error.headers["WWW-Authenticate"]
        assert (await lenient.verify(token)).is_anonymous
    finally:
        await strict.aclose()
        await lenient.aclose()


async def test_odd_optional_claims_are_dropped(verifier: JwtVerifier, claims: Any) -> None:
    user = await verifier.verify(es256(claims(email=["x"], session_id=7)))
    assert (user.email, user.session_id) == (None, None)


# --------------------------------------------------------------------------- C3.10-C3.12 headers


async def test_unknown_kid_flood_causes_at_most_one_fetch_per_interval(
    verifier: JwtVerifier, claims: Any, server: JwksServer, clock: FakeClock
) -> None:
    assert await verifier.verify(es256(claims()))
    clock.advance(60)
    for _ in range(200):
        await rejected(verifier, es256(claims(), kid=secrets.token_hex(8)), "unknown_key")
    assert server.hits == 2  # the first fetch, plus one for the whole flood
    clock.advance(30)
    for _ in range(200):
        await rejected(verifier, rs256(claims(), kid=secrets.token_hex(8)), "unknown_key")
    assert server.hits == 2


@pytest.mark.parametrize("param", ["jku", "x5u"])
async def test_key_url_headers_are_refused_without_fetching(
    verifier: JwtVerifier, claims: Any, server: JwksServer, param: str
) -> None:
    decoy = JwksServer(signing_keys().jwks())
    try:
        token = es256(claims(), kid="attacker", **{param: decoy.url})
        await rejected(verifier, token, "unsupported_header")
        assert (decoy.hits, server.hits) == (0, 0)
    finally:
        decoy.stop()


async def test_embedded_keys_are_refused(verifier: JwtVerifier, claims: Any) -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    embedded = json.loads(ECAlgorithm.to_jwk(attacker.public_key()))
    token = jwt.encode(claims(), attacker, algorithm="ES256",
                       headers={"kid": "ec-1", "jwk": embedded})  # fmt: skip
    await rejected(verifier, token, "unsupported_header")
    token = es256(claims(), x5c=["MIIB..."])
    await rejected(verifier, token, "unsupported_header")


@pytest.mark.parametrize("crit", [["foo"], ["b64"], [], "exp"])
async def test_crit_is_refused(verifier: JwtVerifier, claims: Any, crit: Any) -> None:
    header = {"alg": "ES256", "kid": "ec-1", "crit": crit, "foo": 1, "b64": True}
    token = unsigned(header, claims(), b"x" * 64)
    # Malformed crit values are refused by PyJWT's own header check, the rest by ours.
    with pytest.raises(AuthError) as info:
        await verifier.verify(token)
    assert info.value.code in ("unsupported_header", "malformed_token")


async def test_crit_refused_even_when_validly_signed(verifier: JwtVerifier, claims: Any) -> None:
    for crit in (["exp"], ["b64"]):
        token = sign_raw({"alg": "HS256", "crit": crit, "b64": True}, claims(), SECRET)
        with pytest.raises(AuthError) as info:
            await verifier.verify(token)
        assert info.value.code in ("unsupported_header", "malformed_token")


# --------------------------------------------------------------------------- shape


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d.e",
        "....",
        "é.é.é",
        "x" * 20_000,
        "eyJhbGciOiJIUzI1NiJ9.!!!!.sig",
        "bm90IGpzb24.e30.c2ln",  # header is not JSON
        "W10.e30.c2ln",  # header is a JSON list
    ],
)
async def test_malformed_tokens(verifier: JwtVerifier, token: str) -> None:
    with pytest.raises(AuthError) as info:
        await verifier.verify(token)
    assert info.value.code == "malformed_token"
    assert info.value.status == 401


async def test_keys_unavailable_is_503(
    verifier: JwtVerifier, claims: Any, server: JwksServer
) -> None:
    server.stop()
    await rejected(verifier, es256(claims()), "keys_unavailable", status=503)
    # HS256 tokens keep working while the JWKS is down.
    assert await verifier.verify(hs256(claims()))


async def test_warm_cache_keeps_verifying_while_jwks_is_down(
    verifier: JwtVerifier, claims: Any, server: JwksServer, clock: FakeClock
) -> None:
    assert await verifier.verify(es256(claims()))
    server.stop()
    clock.advance(3600)
    assert await verifier.verify(es256(claims()))
    assert await verifier.verify(rs256(claims()))


def test_short_hs256_secret_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="SUPABASE_JWT_SECRET"):
        JwtVerifier(hs256_secret=b"too-short", jwks=None)
