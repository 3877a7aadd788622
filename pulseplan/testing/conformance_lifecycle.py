"""Conformance checks of the token lifecycle: discovery, the authorization URL, the code
exchange, refresh, validation and revocation, each through the host against the fake."""

from __future__ import annotations

import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from pulseplan.testing.conformance_base import ConformanceBase
from pulseplan.testing.conformance_harness import CANARY
from pulseplan.testing.conformance_harness import Harness
from pulseplan.testing.conformance_harness import flatten
from pulseplan.testing.conformance_harness import query

#: Scopes that identify the account or ask for offline access; never the one a user unticks.
IDENTITY_SCOPES = frozenset({"openid", "email", "profile", "offline_access"})
S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


class LifecycleChecks(ConformanceBase):
    """The lifecycle half of :class:`~pulseplan.testing.conformance.ProviderConformance`."""

    # ------------------------------------------------------------------ discovery

    async def test_plugin_is_discovered_and_configured(self, conformance: Harness) -> None:
        h = conformance
        info = h.host.info(self.provider)
        assert info.enabled
        assert h.spec.name == self.provider, "ProviderSpec.name must be the entry-point name"
        assert info.settings is not None
        assert info.configured, f"not configured from the fake's env: {info.settings.problems}"
        if self.plugin is None:
            assert info.package, "an installed plugin comes from a distribution"
            assert info.version
        listed = await (await h.vault.client.get("/api/v1/providers")).get_json()
        names = {p["name"]: p for p in listed["providers"]}
        assert names[self.provider]["configured"] is True

    # ------------------------------------------------------------------ authorization

    async def test_authorization_url_carries_state_and_exact_redirect_uri(
        self, conformance: Harness
    ) -> None:
        h = conformance
        url = await h.start()
        endpoint, _, _ = url.partition("?")
        assert endpoint == h.fake.endpoints["authorize_url"], "use provider.settings.authorize_url"
        params = query(url)
        assert [k for k, v in params.items() if len(v) != 1] == [], "a parameter is repeated"
        assert params["response_type"] == ["code"]
        assert params["client_id"] == [h.fake.client_id]
        assert params["redirect_uri"] == [h.redirect_uri]
        assert len(params["state"][0]) >= 32
        assert "code_verifier" not in params, "only the S256 challenge may leave the host"

    async def test_authorization_url_uses_pkce_s256_when_the_spec_says_so(
        self, conformance: Harness
    ) -> None:
        h = conformance
        url = await h.start()
        params = query(url)
        if not self.expects_pkce(h):
            assert "code_challenge" not in params
            assert "code_challenge_method" not in params
            return
        assert params.get("code_challenge_method") == ["S256"]
        assert S256_CHALLENGE.fullmatch(params["code_challenge"][0])
        assert (await h.callback(h.fake.consent(url)))["status"] == ["connected"]
        if h.profile.pkce_supported:
            exchanges = [c for c in h.fake.calls("token") if c.grant_type == "authorization_code"]
            assert exchanges[-1].pkce is True, "the provider did not verify the code_verifier"

    async def test_provider_accepts_the_authorization_request(self, conformance: Harness) -> None:
        h = conformance
        url = await h.start()
        callback = h.fake.consent(url)
        back = query(callback)
        assert "error" not in back, f"the provider refused: {back.get('error_description')}"
        assert callback.startswith(h.redirect_uri + "?")
        assert back["state"] == query(url)["state"]
        assert (await h.callback(callback))["status"] == ["connected"]
        replay = await h.vault.callback(callback)
        assert replay.status_code == 400, "a state must work once"

    # ------------------------------------------------------------------ code exchange

    async def test_code_exchange_stores_tokens_encrypted(self, conformance: Harness) -> None:
        h = conformance
        row = await h.connect()
        assert CANARY not in row.access_token
        access = h.access_token(row)
        assert h.fake.is_live(access)
        assert row.status == "active"
        if h.spec.supports_refresh:
            assert row.refresh_token is not None, "the code exchange kept no refresh token"
            assert CANARY not in row.refresh_token
            assert h.refresh_token(row) == h.fake.latest_refresh_token()
        assert "connected" in await h.events()

    async def test_code_exchange_records_email_expiry_and_metadata(
        self, conformance: Harness
    ) -> None:
        h = conformance
        before = datetime.now(UTC)
        row = await h.connect()
        if self.records_email:
            assert row.email == h.fake.default_account.email
        ttl = h.fake.config.access_ttl
        if h.profile.reports_expiry and ttl is not None:
            assert row.expires_at is not None, "expires_in was not turned into expires_at"
            assert before < row.expires_at <= datetime.now(UTC) + timedelta(seconds=ttl + 5)
        else:
            assert row.expires_at is None, "the provider reported no expiry"
        values = flatten(row.metadata)
        for label, value in self.expected_metadata(h, h.access_token(row)).items():
            assert value in values, f"metadata lacks the {label}: {sorted(row.metadata)}"
        assert not any(CANARY in v for v in values), "metadata must not hold tokens"
        secret = h.fake.client_secret
        assert secret is None or not any(secret in v for v in values)

    async def test_code_exchange_records_granted_scopes(self, conformance: Harness) -> None:
        h = conformance
        settings = h.host.info(self.provider).settings
        assert settings is not None
        requested = settings.scopes
        wire = h.profile("")
        if wire.scope_echo(("probe",)) is None:
            # The provider reports no scopes: the host records the ones requested.
            row = await h.connect()
            assert set(row.scopes) == set(requested)
            return
        droppable = [s for s in requested if s not in IDENTITY_SCOPES]
        dropped = droppable[-1] if droppable and len(requested) > 1 else None
        granted = tuple(s for s in requested if s != dropped)
        row = await h.connect(scopes=granted)
        stored = {wire.normalize_scope(s) for s in row.scopes}
        echoed = {wire.normalize_scope(s) for s in (wire.scope_echo(granted) or "").split()}
        assert echoed <= stored, f"granted scopes missing: {sorted(echoed - stored)}"
        if dropped is not None:
            assert wire.normalize_scope(dropped) not in stored, "an unticked scope was stored"

    async def test_token_fetch_never_returns_the_refresh_token(self, conformance: Harness) -> None:
        h = conformance
        row = await h.connect()
        body = await h.tokens()
        assert body[self.provider]["access_token"] == h.access_token(row)
        refresh = h.refresh_token(row)
        assert "refresh_token" not in str(body)
        assert refresh is None or refresh not in str(body)

    # ------------------------------------------------------------------ refresh

    async def test_refresh_issues_a_new_access_token(self, conformance: Harness) -> None:
        h = conformance
        self.require_refresh(h)
        row = await h.connect()
        old = h.access_token(row)
        response = await h.refresh_now()
        assert response.status_code == 200, await response.get_data(as_text=True)
        assert (await response.get_json())["refreshed"] is True
        fresh = h.access_token(await h.stored())
        assert fresh != old
        assert h.fake.is_live(fresh)
        assert (await h.tokens())[self.provider]["access_token"] == fresh
        assert h.fake.count("refresh", ok=True) == 1
        assert (await h.refresh_now()).status_code == 200, "the stored refresh token is dead"
        assert h.fake.count("refresh", ok=True) == 2

    async def test_refresh_keeps_or_rotates_the_refresh_token(self, conformance: Harness) -> None:
        h = conformance
        self.require_refresh(h)
        before = h.refresh_token(await h.connect())
        assert (await h.refresh_now()).status_code == 200
        after = h.refresh_token(await h.stored())
        assert after == h.fake.latest_refresh_token(), "the vault lost the current refresh token"
        if h.fake.rotation == "none":
            assert after == before
        else:
            assert after != before, "the rotated refresh token was not stored"
        assert after is not None
        assert h.fake.is_live(after)

    async def test_refresh_without_refresh_token_keeps_the_old_one(
        self, conformance: Harness
    ) -> None:
        h = conformance
        self.require_refresh(h)
        before = h.refresh_token(await h.connect())
        h.fake.fail_next("refresh", "omit_refresh_token")
        assert (await h.refresh_now()).status_code == 200
        row = await h.stored()
        assert h.refresh_token(row) == before
        assert before is not None
        assert h.fake.is_live(before)
        assert h.fake.is_live(h.access_token(row))

    async def test_expiring_token_is_refreshed_on_fetch(self, conformance: Harness) -> None:
        h = conformance
        self.require_refresh(h)
        row = await h.connect()
        old = h.access_token(row)
        if row.expires_at is None:
            # No expiry reported (Notion): a fetch serves the token without calling refresh.
            assert (await h.tokens())[self.provider]["access_token"] == old
            assert h.fake.count("refresh") == 0
            return
        await h.vault.expire_soon(row)
        fresh = (await h.tokens())[self.provider]["access_token"]
        assert fresh != old
        assert h.fake.is_live(fresh)
        assert h.fake.count("refresh") == 1

    async def test_reconnecting_keeps_a_working_refresh_token(self, conformance: Harness) -> None:
        h = conformance
        self.require_refresh(h)
        await h.connect()
        again = await h.connect()  # same account, consent already given
        refresh = h.refresh_token(again)
        assert refresh is not None, "reconnecting lost the refresh token"
        assert h.fake.is_live(refresh)
        assert (await h.refresh_now()).status_code == 200

    async def test_reconnecting_without_a_refresh_token_obtains_one(
        self, conformance: Harness
    ) -> None:
        h = conformance
        self.require_refresh(h)
        row = await h.connect()
        # The stored grant lost its refresh token: the host asks for one (needs_refresh_token)
        # and the plugin must make the provider issue it although consent was given before
        # (Google: prompt=consent).
        lost = await h.runtime.storage.update_connection(row.id, row.version, refresh_token=None)
        assert lost is not None
        assert lost.refresh_token is None
        refresh = h.refresh_token(await h.connect())
        assert refresh is not None, "the provider issued no refresh token on reconnect"
        assert h.fake.is_live(refresh)

    # ------------------------------------------------------------------ validate, revoke

    async def test_validate_reports_valid_then_invalid(self, conformance: Harness) -> None:
        h = conformance
        row = await h.connect()
        if not h.spec.supports_validate:
            response = await h.vault.client.post(
                f"/api/v1/tokens/connections/{self.provider}/validate", headers=h.headers()
            )
            assert response.status_code == 400
            return
        assert (await h.validate_now())["valid"] is True
        access = h.access_token(row)
        assert h.fake.expire_access_token(access) == 1
        # Straight through the host: a dead token is an answer, not an exception.
        result = await h.host.validate(
            self.provider, access_token=access, metadata=dict(row.metadata)
        )
        assert result.valid is False
        assert (await h.validate_now())["valid"] is False

    async def test_disconnect_revokes_at_the_provider(self, conformance: Harness) -> None:
        h = conformance
        row = await h.connect()
        access, refresh = h.access_token(row), h.refresh_token(row)
        body = await h.disconnect()
        assert await h.row() is None, "the connection must be deleted whatever the provider says"
        if not self.expects_revocation():
            assert body["revoked"] is False
            assert body["revocation"]["supported"] is False
            assert body["revocation"]["detail"], "say that the tokens were only deleted locally"
            assert h.fake.count("revoke") == 0
            assert "revocation_failed" not in await h.events()
            return
        assert body["revoked"] is True, body["revocation"]
        assert h.fake.count("revoke", ok=True) >= 1
        grant = h.fake.grant_info(access)
        assert grant is not None
        assert grant.revoked_reason is not None, "the grant is still live at the provider"
        assert not h.fake.is_live(access)
        assert refresh is None or not h.fake.is_live(refresh)
        assert await h.events() == ["connected", "disconnected"]
