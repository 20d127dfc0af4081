"""API key tokens: `rsk_` + ULID, hashed with SHA-256 for storage and lookup."""

from __future__ import annotations

import hashlib
import re

from ulid import ULID

TOKEN_PREFIX = "rsk_"
TOKEN_PATTERN = re.compile(r"^rsk_[0-9A-HJKMNP-TV-Z]{26}$")
DISPLAY_PREFIX_LENGTH = 12


def token_generate() -> str:
    return f"{TOKEN_PREFIX}{ULID()}"


def token_hash(token: str) -> str:
    """A fast hash is right here: tokens carry 80 random bits, so brute force is hopeless."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_is_well_formed(token: str) -> bool:
    return TOKEN_PATTERN.match(token) is not None


def token_display_prefix(token: str) -> str:
    return token[:DISPLAY_PREFIX_LENGTH]
