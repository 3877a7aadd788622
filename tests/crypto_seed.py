"""An independent, test-only implementation of the seed backends' *encryption*, written from
seed-system.md §1.1/§1.2, so tests can build seed rows the vectors do not cover (a base64-valid
key, many users). Deliberately shares no code with ``pulseplan.crypto``."""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# seed-system.md §1.4
V1_KEY = "test-master-key-0123456789abcdef"
V1_USER = "3f2a8c1e-5b7d-4e9a-8c6f-1a2b3c4d5e6f"
V1_PLAINTEXT = "ya29.a0AfH6SMB-example-access-token"
V1 = (
    "v1:000102030405060708090a0b0c0d0e0f:b16fd690ed6c645d1f53c3cabca1b13b:"
    "1460331a767b63e0fc82c62959aa7b11681451221ae8b0ff3b6ab7786a4e1257a5d5a6"
)
V1_USER_KEY = "0cecfe626da39651533e4af8e6d8d6dcdbf654e10ee2bed1c3a5c0ad84e9124c"
N1 = (
    "000102030405060708090a0b0c0d0e0f:a686cb034a88f4ea647c82cf82c289a0:"
    "4865f3953e0251c6d10bb1ef945fe0daec0ee7405c08858c689e1edb0ecea4be8506bc"
)


def seed_master(key: str, encoding: str) -> bytes:
    """``54e6118`` used the UTF-8 bytes; ``49fa7ff``/HEAD tried a lax b64decode first."""
    if encoding == "utf8":
        return key.encode()
    try:
        return base64.b64decode(key)
    except Exception:
        return key.encode()


def seed_encrypt(
    key: str,
    user_id: str,
    plaintext: str,
    *,
    encoding: str = "utf8",
    version: int = 1,
    iv: bytes | None = None,
) -> str:
    """``encryption.py``'s ``encrypt_token``: PBKDF2 per-user key, 16-byte IV, no AAD."""
    salt = f"pulseplan:user:{user_id}:v{version}".encode()
    user_key = hashlib.pbkdf2_hmac("sha256", seed_master(key, encoding), salt, 100000, 32)
    iv = iv if iv is not None else os.urandom(16)
    sealed = AESGCM(user_key).encrypt(iv, plaintext.encode(), None)
    return f"v{version}:{iv.hex()}:{sealed[-16:].hex()}:{sealed[:-16].hex()}"


def node_encrypt(key: str, plaintext: str, *, iv: bytes | None = None) -> str:
    """``tokenService.ts``: scryptSync(key, 'salt', 32), 16-byte IV, ``iv:tag:ct``."""
    node_key = hashlib.scrypt(key.encode(), salt=b"salt", n=16384, r=8, p=1, dklen=32)
    iv = iv if iv is not None else os.urandom(16)
    sealed = AESGCM(node_key).encrypt(iv, plaintext.encode(), None)
    return f"{iv.hex()}:{sealed[-16:].hex()}:{sealed[:-16].hex()}"
