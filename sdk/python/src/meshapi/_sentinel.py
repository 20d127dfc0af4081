"""`NOT_GIVEN`: an argument left out, as opposed to one set to None (which PATCH sends as null)."""

from __future__ import annotations

import enum
from typing import Final, Literal


class NotGiven(enum.Enum):
    NOT_GIVEN = "NOT_GIVEN"

    def __bool__(self) -> Literal[False]:
        return False


NOT_GIVEN: Final = NotGiven.NOT_GIVEN
