"""Micro-benchmark of token encryption: ``.venv/bin/python bench/crypto.py``.

Prints per-token costs of the current scheme (warm), a cold and a warm seed-format decrypt, and
each cost relative to a baseline measured in the same run: one raw ``AESGCM.encrypt`` of the same
plaintext with a fixed key. Bounded to a few seconds; the numbers are for eyes, not assertions.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pulseplan.crypto import TokenCipher
from pulseplan.crypto import generate_key
from pulseplan.crypto import load_keyring
from pulseplan.crypto.config import KeyConfig
from tests.crypto_seed import node_encrypt
from tests.crypto_seed import seed_encrypt

SEED_KEY = "bench-seed-master-key-0123456789"
TOKEN = "ya29.a0AfH6SMB" + "x" * 180  # about the size of a Google access token
CONTEXT = {"user_id": "3f2a8c1e-5b7d-4e9a-8c6f-1a2b3c4d5e6f", "provider": "google"}


def per_call(func: Callable[[], object], budget: float = 0.4) -> float:
    """Mean seconds per call, running ``func`` repeatedly for about ``budget`` seconds."""
    func()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget:
        for _ in range(100):
            func()
        calls += 100
    return elapsed / calls


def cold(make: Callable[[], Callable[[], object]], rounds: int = 5) -> float:
    """Mean seconds of a first call on a fresh cipher (setup excluded)."""
    total = 0.0
    for _ in range(rounds):
        func = make()
        start = time.perf_counter()
        func()
        total += time.perf_counter() - start
    return total / rounds


def main() -> None:
    config = KeyConfig(
        keys=f"v2:{generate_key()}", seed_key=SEED_KEY, seed_encoding="utf8", node_key=SEED_KEY
    )
    ring = load_keyring(config)
    warm = TokenCipher(ring)
    stored = warm.encrypt(TOKEN, field="access_token", **CONTEXT)
    seed_row = seed_encrypt(SEED_KEY, CONTEXT["user_id"], TOKEN)
    node_row = node_encrypt(SEED_KEY, TOKEN)

    aead, data = AESGCM(os.urandom(32)), TOKEN.encode()
    baseline = per_call(lambda: aead.encrypt(os.urandom(12), data, None))

    def decrypter(row: str) -> Callable[[], Callable[[], object]]:
        def make() -> Callable[[], object]:
            fresh = TokenCipher(ring)
            return lambda: fresh.decrypt(row, field="access_token", **CONTEXT)

        return make

    rows = [
        ("raw AESGCM.encrypt (baseline)", baseline),
        (
            "encrypt, current scheme (warm)",
            per_call(lambda: warm.encrypt(TOKEN, field="access_token", **CONTEXT)),
        ),
        (
            "decrypt, current scheme (warm)",
            per_call(lambda: warm.decrypt(stored, field="access_token", **CONTEXT)),
        ),
        ("decrypt, current scheme (cold: HKDF)", cold(decrypter(stored), rounds=50)),
        ("decrypt, seed PBKDF2 v1 (cold)", cold(decrypter(seed_row))),
        (
            "decrypt, seed PBKDF2 v1 (warm)",
            per_call(lambda: warm.decrypt(seed_row, field="access_token", **CONTEXT)),
        ),
        ("decrypt, seed Node scrypt (cold)", cold(decrypter(node_row), rounds=3)),
        (
            "decrypt, seed Node scrypt (warm)",
            per_call(lambda: warm.decrypt(node_row, field="access_token", **CONTEXT)),
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"token: {len(data)} bytes; baseline measured in this run")
    print(f"{'operation'.ljust(width)}  {'per token':>12}  {'x baseline':>10}")
    for name, seconds in rows:
        print(f"{name.ljust(width)}  {seconds * 1e6:>9.1f} us  {seconds / baseline:>10.1f}")
    counts = warm.derivations
    print(f"derivations (warm cipher): hkdf={counts.hkdf}", end=" ")
    print(f"pbkdf2={counts.pbkdf2} scrypt={counts.scrypt}")


if __name__ == "__main__":
    main()
