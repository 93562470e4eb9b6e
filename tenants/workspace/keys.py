"""API key material: ``tnr_<prefix>_<secret>``; only the SHA-256 of the whole key is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

KEY_SCHEME = "tnr"
PREFIX_BYTES = 4  # 8 hex characters, shown in listings
SECRET_BYTES = 24  # 48 hex characters, 192 bits


@dataclass(frozen=True)
class KeyMaterial:
    raw: str  # shown once, never stored
    prefix: str
    key_hash: str


def key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def key_generate() -> KeyMaterial:
    prefix = f"{KEY_SCHEME}_{secrets.token_hex(PREFIX_BYTES)}"
    raw = f"{prefix}_{secrets.token_hex(SECRET_BYTES)}"
    return KeyMaterial(raw=raw, prefix=prefix, key_hash=key_hash(raw))


def key_looks_valid(raw: str) -> bool:
    parts = raw.split("_")
    return (
        len(parts) == 3
        and parts[0] == KEY_SCHEME
        and len(parts[1]) == PREFIX_BYTES * 2
        and len(parts[2]) == SECRET_BYTES * 2
    )
