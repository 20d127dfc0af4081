"""Token counts guessed from JSON sizes, for when no tokenizer or upstream count is at hand.

One module, two documented factors, so every caller guesses alike:
- `tokens_from_bytes`: the expected count (about four bytes of JSON per token for GPT-style
  tokenizers on English text), for billing an estimate and for fitting a context window;
- `tokens_at_most`: a bound no tokenizer exceeds (one token per byte), for the worst case a hard
  spend cap holds before the upstream call.
"""

from __future__ import annotations

BYTES_PER_TOKEN = 4


def tokens_from_bytes(size: int) -> int:
    """The expected token count of `size` bytes of JSON (rounded down)."""
    return size // BYTES_PER_TOKEN


def tokens_at_most(size: int) -> int:
    """An upper bound on the token count of `size` bytes: tokenizers yield fewer tokens than bytes."""
    return size
