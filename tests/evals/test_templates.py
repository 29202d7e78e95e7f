"""Prompt templates render in Jinja2's sandbox: variables fill in, injections stay inert or are
refused with a clear code, a missing variable is named, and no template can run unbounded."""

from __future__ import annotations

import time

import pytest

from gapless.errors import InvalidError
from gapless.evals import templates


def refusal(text: str, values: dict[str, object] | None = None) -> InvalidError:
    with pytest.raises(InvalidError) as caught:
        templates.render(text, values or {})
    assert caught.value.status == 422
    return caught.value


def test_variables_fill_in_with_loops_conditions_and_filters() -> None:
    text = (
        "Hi {{ name|title }}!{% for x in items %} [{{ x }}]{% endfor %}{% if vip %} VIP{% endif %}"
    )
    values = {"name": "ann lee", "items": [1, 2], "vip": True}
    assert templates.render(text, values) == "Hi Ann Lee! [1] [2] VIP"


def test_a_template_lists_its_variables_but_not_its_loop_names_or_globals() -> None:
    assert templates.variables("{{ a }}{% for x in b %}{{ x }}{% endfor %}{{ range(2)|list }}") == [
        "a",
        "b",
    ]


def test_a_missing_variable_is_refused_naming_every_missing_one() -> None:
    error = refusal("{{ topic }} for {{ audience }} in {{ style }}", {"topic": "tides"})
    assert error.code == "missing_variable"
    assert error.message == "missing variables: audience, style"


def test_a_missing_key_of_a_given_value_is_refused_not_rendered_empty() -> None:
    error = refusal("{{ user.name }}", {"user": {}})
    assert error.code == "undefined" and "name" in error.message


def test_a_syntax_error_names_its_line() -> None:
    with pytest.raises(InvalidError) as caught:
        templates.variables("fine\n{% if x %}never closed")
    assert caught.value.code == "template_syntax" and "line 2" in caught.value.message


@pytest.mark.parametrize(
    "text",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
        "{{ self.__dict__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ '{0.__class__}'.format(1) }}",
        "{{ config.__class__ }}",
    ],
)
def test_template_injection_is_refused_by_the_sandbox(text: str) -> None:
    error = refusal(text, {"config": {}})
    assert error.code in ("unsafe_template", "undefined"), error.message
    assert "unsafe" in error.message or "undefined" in error.message


def test_a_variable_holding_template_syntax_renders_as_plain_text() -> None:
    payload = "{{ ''.__class__ }}{% for x in range(9) %}x{% endfor %}"
    assert templates.render("Q: {{ question }}", {"question": payload}) == f"Q: {payload}"


def test_values_cannot_be_mutated_from_the_template() -> None:
    items = [1]
    error = refusal("{{ items.append(2) }}", {"items": items})
    assert error.code == "unsafe_template" and items == [1]


@pytest.mark.parametrize(
    "text",
    [
        "{{ 'a' * 1000000 }}",
        "{{ 9 ** 99 }}",
        "{{ 'a'|center(1000000000) }}",
        "{{ 'a'.ljust(10000000) }}",
        "{{ range(1000000)|list }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% for i in range(99999) %}{{ 'a' * 99999 }}{% endfor %}",
    ],
)
def test_a_template_that_would_take_too_long_or_grow_too_large_is_stopped(text: str) -> None:
    started = time.monotonic()
    error = refusal(text)
    assert error.code in ("unsafe_template", "template_error")
    assert time.monotonic() - started < 2


def test_the_line_budget_is_left_as_it_was_found() -> None:
    import sys

    before = sys.gettrace()
    templates.render("{{ a }}", {"a": 1})
    assert sys.gettrace() is before
