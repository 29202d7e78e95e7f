"""Python functions as tools, and plugins that add them (the entry-point group `gapless.tools`).

A typed function is a tool: its name is the function's, its description the
docstring, its input schema the parameters' (pydantic builds it, so
`Annotated[int, Field(description=..., ge=0)]` is honoured and the same model
checks a call's arguments). A parameter annotated `ToolContext` receives the
call's context instead of an argument. Sync functions run in a thread, so a
slow one cannot stall the event loop every stream shares.

Plugins have the shape of simonw/llm's: a pip-installed distribution declares

    [project.entry-points."gapless.tools"]
    weather = "my_package:forecast"

and each entry point names a function, a `Tool`, a list of them, or a function
that returns such a list (it takes no parameter and is annotated as answering a
list of tools or callables). Imports `agents.tools`.
"""

from __future__ import annotations

import asyncio
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pydantic
from pydantic.json_schema import GenerateJsonSchema

from gapless.agents.tools import JSON, Tool, ToolContext, ToolError, ToolInfo

GROUP = "gapless.tools"


class _Schema(GenerateJsonSchema):
    """Pydantic's JSON schema without a generated `title` on every property: noise for a model."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


@dataclass(frozen=True)
class FunctionTool:
    """A Python function behind the `Tool` interface."""

    name: str
    description: str
    schema: dict[str, Any]
    destructive: bool
    fn: Callable[..., Any]
    model: type[pydantic.BaseModel] = field(repr=False)
    parameters: dict[str, str] = field(default_factory=dict, repr=False)  # field -> parameter
    context_parameter: str | None = None

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> JSON:
        try:
            values = self.model.model_validate(arguments)
        except pydantic.ValidationError as error:
            raise ToolError(_validation_message(error), code="invalid_arguments") from None
        kwargs = {name: getattr(values, key) for key, name in self.parameters.items()}
        if self.context_parameter:
            kwargs[self.context_parameter] = context
        try:
            if inspect.iscoroutinefunction(self.fn):
                result = await self.fn(**kwargs)
            else:
                result = await asyncio.to_thread(self.fn, **kwargs)
        except ToolError:
            raise
        except Exception as error:  # a plugin's own ValueError etc.: the model should hear it
            raise ToolError(f"{type(error).__name__}: {error}", code="tool_error") from error
        try:
            return typing.cast(JSON, pydantic.TypeAdapter(Any).dump_python(result, mode="json"))
        except ValueError as error:  # pydantic's serialisation error is one
            raise ToolError(f"the tool answered something not JSON: {error}") from error


def tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    destructive: bool = False,
) -> FunctionTool:
    """`fn` as a tool; usable as a bare decorator. Raises TypeError for a signature a model
    cannot call (`*args`, `**kwargs`, positional-only parameters) or hints that do not resolve.

    The model's fields are named `arg0`, `arg1`... with the parameters' names as aliases, so a
    parameter may be called anything (`json`, `schema`, `model_config` would clash with
    pydantic's own names)."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError) as error:
        raise TypeError(f"{fn.__name__}: its type hints do not resolve: {error}") from error
    fields: dict[str, Any] = {}
    parameters: dict[str, str] = {}
    context_parameter = None
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            raise TypeError(f"{fn.__name__}: parameter {parameter.name} cannot be a tool argument")
        annotation = hints.get(parameter.name, Any)
        if annotation is ToolContext:
            context_parameter = parameter.name
            continue
        default = ... if parameter.default is parameter.empty else parameter.default
        key = f"arg{len(fields)}"
        fields[key] = (annotation, pydantic.Field(default, alias=parameter.name))
        parameters[key] = parameter.name
    tool_name = name or fn.__name__
    model = pydantic.create_model(
        tool_name, __config__=pydantic.ConfigDict(extra="forbid"), **fields
    )
    schema = model.model_json_schema(schema_generator=_Schema)
    schema.pop("title", None)
    return FunctionTool(
        name=tool_name,
        description=description or inspect.getdoc(fn) or tool_name,
        schema=schema,
        destructive=destructive,
        fn=fn,
        model=model,
        parameters=parameters,
        context_parameter=context_parameter,
    )


def is_tool(value: object) -> bool:
    """Whether `value` already implements `Tool` (a function must first go through `tool`)."""
    if isinstance(value, type) or inspect.isfunction(value) or inspect.ismethod(value):
        return False
    return all(hasattr(value, a) for a in ("name", "description", "schema", "call"))


def as_tools(value: object) -> list[Tool]:
    """An entry point's object as tools: a Tool, a function, a list, or a factory of a list."""
    if is_tool(value):
        return [typing.cast(Tool, value)]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [t for item in value for t in as_tools(item)]
    if callable(value) and _is_factory(value):
        return as_tools(value())
    if callable(value):
        return [tool(value)]
    raise TypeError(f"{value!r} is not a tool, a function or a list of them")


def plugins(group: str = GROUP) -> tuple[list[Tool], list[ToolInfo]]:
    """Every installed plugin's tools, and one ToolInfo with `error` per plugin that failed to
    load (its import raised, or it named something that is not a tool)."""
    found: list[Tool] = []
    broken: list[ToolInfo] = []
    for point in entry_points(group=group):
        try:
            found.extend(as_tools(point.load()))
        except Exception as error:  # one broken plugin must not take the others down
            message = f"plugin {point.value} failed: {type(error).__name__}: {error}"
            broken.append(ToolInfo(name=f"{point.name}.*", description="", source="plugin",
                                   error=message))
    return found, broken


def _is_factory(fn: Callable[..., Any]) -> bool:
    """A callable without parameters annotated as answering a list of tools or callables."""
    try:
        if inspect.signature(fn).parameters:
            return False
        answer = typing.get_type_hints(fn).get("return")
    except (TypeError, ValueError, NameError):
        return False
    if typing.get_origin(answer) not in (list, tuple, Sequence, Iterable):
        return False
    return any(_is_tool_type(item) for item in typing.get_args(answer))


def _is_tool_type(kind: Any) -> bool:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_is_tool_type(k) for k in typing.get_args(kind))
    if kind is Callable or origin is Callable:
        return True
    return kind is Tool or (isinstance(kind, type) and issubclass(kind, FunctionTool))


def _validation_message(error: pydantic.ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or 'arguments'}: {item['msg']}"
        for item in error.errors()
    )
