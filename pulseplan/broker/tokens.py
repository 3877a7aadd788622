"""Encryption at the row boundary: each token field is bound to its user, provider and field, so
the storage layer only ever sees ciphertext and a ciphertext moved elsewhere does not decrypt."""

from __future__ import annotations

from typing import Literal
from typing import Protocol

from loguru import logger

from pulseplan.broker.results import FreshToken
from pulseplan.broker.results import Undecryptable
from pulseplan.crypto.errors import DecryptionError
from pulseplan.storage.models import Connection

Field = Literal["access_token", "refresh_token"]


class Cipher(Protocol):
    """What the broker needs from :class:`pulseplan.crypto.TokenCipher`."""

    def encrypt(self, plaintext: str, *, user_id: str, provider: str, field: str) -> str: ...

    def decrypt(self, ciphertext: str, *, user_id: str, provider: str, field: str) -> str: ...


class TokenCodec:
    """Encrypts and decrypts a connection's token fields."""

    def __init__(self, cipher: Cipher):
        self.cipher = cipher

    def encrypt(self, row: Connection | tuple[str, str], field: Field, plaintext: str) -> str:
        user_id, provider = (row.user_id, row.provider) if isinstance(row, Connection) else row
        return self.cipher.encrypt(plaintext, user_id=user_id, provider=provider, field=field)

    def decrypt(self, row: Connection, field: Field) -> str | None:
        """Plaintext of ``field`` (``None`` when empty).

        :raises Undecryptable: never a fallback to the stored string.
        """
        value = row.access_token if field == "access_token" else row.refresh_token
        if value is None:
            return None
        try:
            return self.cipher.decrypt(
                value, user_id=row.user_id, provider=row.provider, field=field
            )
        except DecryptionError as exc:
            logger.error(
                "connection {} ({}) {} does not decrypt: {}",
                row.id,
                row.provider,
                field,
                type(exc).__name__,
            )
            raise Undecryptable(
                f"stored {row.provider} tokens cannot be decrypted; reconnect the account"
            ) from None

    def fresh(self, row: Connection) -> FreshToken:
        access = self.decrypt(row, "access_token")
        assert access is not None
        return FreshToken(
            provider=row.provider,
            access_token=access,
            expires_at=row.expires_at,
            scopes=row.scopes,
        )
