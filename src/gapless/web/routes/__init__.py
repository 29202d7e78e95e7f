"""HTTP resources by domain, one module each (`chats` and the rest are still in `web.api`)."""

from typing import Annotated

from pydantic import Field

# The largest version number (or other stored integer) a request may name: a column's
# 32-bit range, so a huge number is a 422, never the database's overflow.
LARGEST = 2**31 - 1
# A whole number a score may be, exactly as its float column holds it (a larger one is
# taken as a float).
Whole = Annotated[int, Field(ge=-(2**53), le=2**53)]
