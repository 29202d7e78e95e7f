"""The pure price table and the cost of one reply."""

from __future__ import annotations

import pytest

from gapless.prices import DEFAULT_PRICES, Price, cost, price_of, with_overrides
from gapless.providers.base import Usage

MILLION = Usage(input_tokens=1_000_000, output_tokens=1_000_000)


def test_cost_is_input_and_output_tokens_at_their_per_million_prices() -> None:
    usage = Usage(input_tokens=2_000, output_tokens=500, reasoning_tokens=200)

    # reasoning is already inside output_tokens: not billed twice
    assert cost("openai:gpt-4o-mini", usage, DEFAULT_PRICES) == pytest.approx(
        2_000 * 0.15 / 1e6 + 500 * 0.60 / 1e6
    )


def test_model_without_a_price_costs_none_not_zero() -> None:
    assert cost("ollama:llama3.2", MILLION, DEFAULT_PRICES) is None


def test_local_and_demo_models_are_free_whatever_their_name() -> None:
    assert cost("local:smollm2", MILLION, DEFAULT_PRICES) == 0.0
    assert cost("demo:default", MILLION, DEFAULT_PRICES) == 0.0


def test_dated_snapshot_is_priced_by_its_family_pattern() -> None:
    assert price_of("anthropic:claude-sonnet-4-5-20250929", DEFAULT_PRICES) == Price(3.0, 15.0)
    assert cost("anthropic:claude-haiku-4-5", MILLION, DEFAULT_PRICES) == pytest.approx(6.0)


def test_exact_key_wins_over_pattern_and_longest_pattern_wins() -> None:
    table = {"x:*": Price(1, 1), "x:big*": Price(2, 2), "x:big-one": Price(3, 3)}

    assert price_of("x:big-one", table) == Price(3, 3)
    assert price_of("x:big-two", table) == Price(2, 2)
    assert price_of("x:small", table) == Price(1, 1)
    assert price_of("y:small", table) is None


def test_overrides_extend_and_replace_the_defaults_without_changing_them() -> None:
    table = with_overrides({"ollama:*": Price(0, 0), "openai:gpt-4o": Price(1.0, 2.0)})

    assert cost("ollama:qwen3:8b", MILLION, table) == 0.0
    assert cost("openai:gpt-4o", MILLION, table) == pytest.approx(3.0)
    assert DEFAULT_PRICES["openai:gpt-4o"] == Price(2.50, 10.00)
    assert price_of("openai:gpt-4o-mini", table) == Price(0.15, 0.60)
