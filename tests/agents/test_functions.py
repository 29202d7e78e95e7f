"""Python functions as tools (schema from the signature, description from the docstring),
and plugins found through a real installed distribution's `gapless.tools` entry points."""

from __future__ import annotations

import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import pydantic
import pytest
from pydantic import Field

from gapless.agents.functions import as_tools, plugins, tool
from gapless.agents.toolbox import build_toolbox
from gapless.agents.tools import ToolContext, ToolError
from gapless.config import Settings

CONTEXT = ToolContext(user_id="u", account_ids=None, chat_id="c", message_id="m")


class Point(pydantic.BaseModel):
    x: float
    y: float


def distance(
    a: Point,
    b: Annotated[Point, Field(description="The other point")],
    unit: Literal["m", "km"] = "m",
) -> dict[str, object]:
    """The distance between two points.

    Straight line, no detours."""
    metres = ((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5
    return {"distance": metres / (1000 if unit == "km" else 1), "unit": unit}


async def whoami(context: ToolContext, loud: bool = False) -> str:
    """Who asked."""
    name = context.user_id or "nobody"
    return name.upper() if loud else name


def test_a_function_s_signature_and_docstring_make_the_tool() -> None:
    made = tool(distance)
    assert made.name == "distance"
    assert made.description == "The distance between two points.\n\nStraight line, no detours."
    assert made.destructive is False
    schema = made.schema
    assert schema["type"] == "object" and schema["required"] == ["a", "b"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["b"]["description"] == "The other point"
    assert schema["properties"]["unit"] == {"default": "m", "enum": ["m", "km"], "type": "string"}
    assert "Point" in schema["$defs"]
    assert "title" not in schema and "title" not in schema["properties"]["unit"]


def test_a_name_description_and_destructive_flag_can_be_given() -> None:
    made = tool(distance, name="how_far", description="Measure.", destructive=True)
    assert (made.name, made.description, made.destructive) == ("how_far", "Measure.", True)


async def test_a_call_validates_converts_and_answers_json() -> None:
    made = tool(distance)
    arguments = {"a": {"x": 0, "y": 0}, "b": {"x": 3000, "y": 4000}, "unit": "km"}
    assert await made.call(arguments, CONTEXT) == {"distance": 5.0, "unit": "km"}


async def test_the_context_is_passed_to_a_parameter_typed_for_it_and_kept_out_of_the_schema() -> (
    None
):
    made = tool(whoami)
    assert set(made.schema["properties"]) == {"loud"}
    assert await made.call({"loud": True}, CONTEXT) == "U"


async def test_a_sync_function_runs_off_the_event_loop_thread() -> None:
    def where() -> int:
        """The thread it ran on."""
        return threading.get_ident()

    assert await tool(where).call({}, CONTEXT) != threading.get_ident()


async def test_results_are_made_json_and_failures_are_tool_errors() -> None:
    def when() -> datetime:
        """A moment."""
        return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def broken(n: int) -> int:
        """Fails."""
        raise ValueError(f"no {n}")

    def opaque() -> object:
        """Answers something that is not data."""
        return object()

    assert await tool(when).call({}, CONTEXT) == "2026-01-02T03:04:05Z"
    cases = [
        (tool(broken), {"n": 2}, "tool_error", "ValueError: no 2"),
        (tool(broken), {"n": "two"}, "invalid_arguments", "n:"),
        (tool(broken), {}, "invalid_arguments", "n: Field required"),
        (tool(broken), {"n": 1, "m": 2}, "invalid_arguments", "m: Extra inputs"),
        (tool(opaque), {}, "tool_error", "not JSON"),
    ]
    for made, arguments, code, message in cases:
        with pytest.raises(ToolError) as raised:
            await made.call(arguments, CONTEXT)
        assert raised.value.code == code and message in raised.value.message


async def test_parameters_may_be_named_like_pydantic_s_own_attributes() -> None:
    def odd(json: str, schema: int, model_config: str = "!") -> str:
        """Names pydantic keeps for itself."""
        return json * schema + model_config

    made = tool(odd)
    assert set(made.schema["properties"]) == {"json", "schema", "model_config"}
    assert made.schema["required"] == ["json", "schema"]
    assert await made.call({"json": "ab", "schema": 2}, CONTEXT) == "abab!"


def test_a_signature_a_model_cannot_call_is_refused() -> None:
    def variadic(*numbers: int) -> int:
        return sum(numbers)

    with pytest.raises(TypeError):
        tool(variadic)


PLUGIN = '''
    """A plugin as a third party would publish it."""
    from __future__ import annotations

    from collections.abc import Callable

    from gapless.agents.functions import FunctionTool, tool


    def shout(text: str) -> str:
        """Shout the text."""
        return text.upper()


    def double(n: int) -> int:
        """Double a number."""
        return 2 * n


    def halve(n: int) -> float:
        """Halve a number."""
        return n / 2


    def calculator(expression: str) -> str:
        """Not the built-in one."""
        return expression


    def register() -> list[Callable[..., object]]:
        return [double]


    TOOLS = [halve, tool(shout, name="yell", destructive=True)]
    CUSTOM: FunctionTool = tool(shout, name="custom_shout")
'''

ENTRY_POINTS = """
[gapless.tools]
shout = gapless_test_plugin:shout
made = gapless_test_plugin:register
many = gapless_test_plugin:TOOLS
custom = gapless_test_plugin:CUSTOM
clash = gapless_test_plugin:calculator
broken = gapless_test_plugin_missing:nothing
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A distribution installed as pip leaves one: its module and a `.dist-info` with
    entry_points.txt, in a directory on sys.path."""
    site = tmp_path / "site"
    (site / "gapless_test_plugin").mkdir(parents=True)
    (site / "gapless_test_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "gapless_test_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gapless-test-plugin\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("gapless_test_plugin", None)


async def test_installed_plugins_add_tools_and_a_broken_one_is_reported(installed: Path) -> None:
    found, broken = plugins()
    by_name = {t.name: t for t in found}
    assert set(by_name) == {"shout", "double", "halve", "yell", "custom_shout", "calculator"}
    assert by_name["yell"].destructive is True
    assert await by_name["double"].call({"n": 21}, CONTEXT) == 42
    assert await by_name["shout"].call({"text": "hi"}, CONTEXT) == "HI"
    [failure] = broken
    assert failure.name == "broken.*" and failure.source == "plugin"
    assert failure.error and "gapless_test_plugin_missing" in failure.error


async def test_the_toolbox_offers_plugins_beside_built_ins_which_win_a_name(
    installed: Path,
) -> None:
    toolbox = build_toolbox(Settings(tools=("calculator",)))
    listed = {(i.name, i.source, i.error is None) for i in await toolbox.available()}
    assert ("calculator", "builtin", True) in listed
    assert ("calculator", "plugin", False) in listed  # the clash, reported
    assert ("double", "plugin", True) in listed
    assert ("broken.*", "plugin", False) in listed
    tools = await toolbox.resolve(["calculator", "double", "nope"])
    assert set(tools) == {"calculator", "double"}
    answer = await tools["calculator"].call({"expression": "1+1"}, CONTEXT)
    assert answer == {"expression": "1+1", "result": 2}
    await toolbox.close()


def test_an_entry_point_may_name_a_function_a_tool_a_list_or_a_factory() -> None:
    def one(n: int) -> int:
        """One."""
        return n

    made = tool(one, name="uno")
    assert [t.name for t in as_tools(one)] == ["one"]
    assert as_tools(made) == [made]
    assert [t.name for t in as_tools([one, made])] == ["one", "uno"]

    def factory() -> list[object]:  # not annotated as tools: a tool itself, answering a list
        return [one]

    assert [t.name for t in as_tools(factory)] == ["factory"]
    with pytest.raises(TypeError):
        as_tools(42)
