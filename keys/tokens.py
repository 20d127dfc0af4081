"""API key tokens: `rsk_` + ULID, hashed with SHA-256 for storage and lookup."""

from __future__ import annotations

import hashlib
import re

from ulid import ULID

TOKEN_PREFIX = "rsk_"
TOKEN_PATTERN = re.compile(r"^rsk_[0-9A-HJKMNP-TV-Z]{26}$")
# "rsk_" + the ULID's 10 timestamp characters + 2 random ones: keys made in the same
# millisecond still differ, and 70 of the 80 random bits stay secret.
DISPLAY_PREFIX_LENGTH = 16


def token_generate() -> str:
    return f"{TOKEN_PREFIX}{ULID()}"


def token_hash(token: str) -> str:
    """A fast hash is right here: tokens carry 80 random bits, so brute force is hopeless."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_is_well_formed(token: str) -> bool:
    return TOKEN_PATTERN.match(token) is not None


def token_display_prefix(token: str) -> str:
    return token[:DISPLAY_PREFIX_LENGTH]
