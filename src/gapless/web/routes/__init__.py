"""HTTP resources by domain, one module each (`chats` and the rest are still in `web.api`)."""

from typing import Annotated, Any

from pydantic import Field

# The largest version number (or other stored integer) a request may name: a column's
# 32-bit range, so a huge number is a 422, never the database's overflow.
LARGEST = 2**31 - 1
# A whole number a score may be, exactly as its float column holds it (a larger one is
# taken as a float).
Whole = Annotated[int, Field(ge=-(2**53), le=2**53)]
# An export's answer, as the OpenAPI document states it: JSONL or CSV text, by `format`
# (`response_class=Response`: no JSON body declared beside them).
EXPORT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Lines of JSON (`format=jsonl`) or CSV with a header row (`format=csv`).",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}
