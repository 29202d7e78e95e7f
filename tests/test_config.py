"""Settings read from the environment as an operator writes them."""

from __future__ import annotations

import pytest

from gapless.config import Settings


@pytest.mark.parametrize("written", ["demo,bench", ' demo , bench ', '["demo", "bench"]'])
def test_providers_read_as_a_list_or_json(monkeypatch: pytest.MonkeyPatch, written: str) -> None:
    monkeypatch.setenv("GAPLESS_PROVIDERS", written)
    assert Settings().providers == ("demo", "bench")


def test_providers_default_to_the_embedded_model_and_the_demo() -> None:
    assert Settings().providers == ("local", "demo")
