"""Prices of models and the cost of one reply. Pure; imports `providers.base` (for `Usage`).

A price is USD per million input and output tokens, keyed by model id
(`provider:model`). A key ending in `*` covers every id that starts with what
precedes it (`local:*`, or `anthropic:claude-sonnet-4-5*` for its dated
snapshots); an exact key wins over a pattern, and the longest pattern wins
over shorter ones.

`DEFAULT_PRICES` are list prices as published by OpenAI and Anthropic when
this was written, given as defaults only: providers change them, so
configuration extends or overrides the table (`with_overrides`). Reasoning
tokens are not priced apart: both APIs bill them as output and already count
them in `output_tokens`. Cached-input discounts are ignored (an upper bound).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gapless.providers.base import Usage

PER = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    input: float  # USD per million input tokens
    output: float  # USD per million output tokens


FREE = Price(0.0, 0.0)

DEFAULT_PRICES: Mapping[str, Price] = MappingProxyType(
    {
        "demo:*": FREE,
        "local:*": FREE,
        "openai:gpt-4o-mini": Price(0.15, 0.60),
        "openai:gpt-4o": Price(2.50, 10.00),
        "openai:gpt-4.1": Price(2.00, 8.00),
        "openai:gpt-4.1-mini": Price(0.40, 1.60),
        "openai:gpt-4.1-nano": Price(0.10, 0.40),
        "openai:gpt-5": Price(1.25, 10.00),
        "openai:gpt-5-mini": Price(0.25, 2.00),
        "openai:gpt-5-nano": Price(0.05, 0.40),
        "openai:o4-mini": Price(1.10, 4.40),
        "anthropic:claude-opus-4-5*": Price(5.00, 25.00),
        "anthropic:claude-opus-4-1*": Price(15.00, 75.00),
        "anthropic:claude-sonnet-4-5*": Price(3.00, 15.00),
        "anthropic:claude-sonnet-4*": Price(3.00, 15.00),
        "anthropic:claude-haiku-4-5*": Price(1.00, 5.00),
        "anthropic:claude-3-5-haiku*": Price(0.80, 4.00),
    }
)


def with_overrides(
    overrides: Mapping[str, Price], base: Mapping[str, Price] = DEFAULT_PRICES
) -> dict[str, Price]:
    """The table configuration builds: the defaults, extended and overridden by `overrides`."""
    return {**base, **overrides}


def price_of(model_id: str, table: Mapping[str, Price]) -> Price | None:
    """The exact entry, else the longest `*` pattern that matches, else None."""
    if model_id in table:
        return table[model_id]
    matches = [key for key in table if key.endswith("*") and model_id.startswith(key[:-1])]
    return table[max(matches, key=len)] if matches else None


def cost(model_id: str, usage: Usage, table: Mapping[str, Price]) -> float | None:
    """USD for one reply, or None when the model has no known price (unknown is not free)."""
    price = price_of(model_id, table)
    if price is None:
        return None
    return (usage.input_tokens * price.input + usage.output_tokens * price.output) / PER
