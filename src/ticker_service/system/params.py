"""Query parameters that several routes share, bounded so that no value can fail deeper down."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

MAX_OFFSET = 2**63 - 1  # PostgreSQL's bigint: a larger OFFSET cannot even be sent to it

Offset = Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET, description="Items to skip")]
