"""Use cases of prompts, with authorisation exactly like chats (another account's is 404).

A prompt is found by name in the caller's accounts (`account_id` picks one
when the name is in several). A version is chosen by number, or by label
(`production` when neither is given); `latest` follows each new version by
itself and cannot be moved by hand. `resolve_instructions` is what the agent
loop calls once when a reply starts, so a reply keeps the version it began
with however the label moves after. Imports `db`, `errors`, `evals.templates`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gapless.db import Engine
from gapless.db import evals as db
from gapless.db.accounts import Caller
from gapless.errors import ConflictError, InvalidError, NotFoundError
from gapless.evals import templates

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
LABEL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,49}$")
DEFAULT_LABEL = "production"


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise InvalidError(
            "a prompt's name is letters, digits, '.', '_' or '-' (at most 100)", code="bad_name"
        )
    return name


def check_labels(labels: Any, *, moving: bool = True) -> list[str]:
    found = list(dict.fromkeys(labels or []))
    for label in found:
        if not isinstance(label, str) or not LABEL.match(label):
            raise InvalidError(
                f"label {label!r}: lowercase letters, digits, '.', '_' or '-' (at most 50)",
                code="bad_label",
            )
        if moving and label == db.LATEST:
            raise InvalidError("'latest' follows the newest version by itself", code="bad_label")
    return found


def _version_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    content = fields.get("content")
    if not isinstance(content, str):
        raise InvalidError("a version needs its content", code="bad_content")
    templates.variables(content)  # a syntax error is refused now, not at the first use
    config = {k: v for k, v in dict(fields.get("config") or {}).items() if v is not None}
    return {"content": content, "config": config, "message": fields.get("message") or ""}


def _version_out(
    found: dict[str, Any], prompt: dict[str, Any], labels: dict[str, int]
) -> dict[str, Any]:
    """A version as the API answers it: with its prompt, variables and the labels on it."""
    return {
        **found,
        "name": prompt["name"],
        "prompt_id": prompt["id"],
        "account_id": prompt["account_id"],
        "labels": sorted(label for label, v in labels.items() if v == found["version"]),
        "variables": templates.variables(found["content"]),
    }


async def _pick(engine: Engine, prompt: dict[str, Any], ref: Mapping[str, Any]) -> dict[str, Any]:
    """The version `ref` names: `version` (a number) or `label` (`production` by default),
    where the label pointed at `as_of` (a datetime) when it says."""
    number = ref.get("version")
    if number is None:
        label = ref.get("label") or DEFAULT_LABEL
        when = ref.get("as_of")
        number = await (
            db.label_version_at(engine, prompt["id"], label, when)
            if when is not None
            else db.label_version(engine, prompt["id"], label)
        )
        if number is None:
            raise NotFoundError(f"prompt {prompt['name']!r} has no label {label!r}")
    found = await db.get_version(engine, prompt["id"], int(number))
    if found is None:
        raise NotFoundError(f"prompt {prompt['name']!r} has no version {number}")
    return found


async def resolve_instructions(
    engine: Engine, account_id: str, ref: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """An agent's instructions from `ref` = {name, label} or {name, version} (optionally
    `variables`), rendered in the sandbox, and {name, version} of what was used.

    `NotFoundError` when the prompt, label or version does not exist in the account;
    `InvalidError` when the template cannot render (a variable missing, say)."""
    found = await db.prompts_named(engine, str(ref.get("name") or ""), [account_id])
    if not found:
        raise NotFoundError(f"no prompt named {ref.get('name')!r}")
    version = await _pick(engine, found[0], ref)
    text = templates.render(version["content"], ref.get("variables") or {})
    return text, {"name": found[0]["name"], "version": version["version"]}


async def apply_prompt(
    engine: Engine,
    account_id: str,
    agent: Mapping[str, Any] | None,
    used: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The agent with `instructions` taken from its `prompt` ({name, label | version,
    variables?}), and {name, version} used; an agent without a prompt comes back as it is,
    with None. `used` (what the reply stored when it started) pins the version, so a run
    going on after an approval keeps its text however the label moved. A reply without an
    agent that names its prompt (an experiment's run of a prompt version, rendered into its
    chat's system prompt) reports that prompt, so its trace records it."""
    if agent is None:
        return None, ({"name": used["name"], "version": used["version"]} if used else None)
    if not agent.get("prompt"):
        return dict(agent), None
    ref = dict(agent["prompt"])
    if used is not None:
        ref = {"name": used["name"], "version": used["version"], "variables": ref.get("variables")}
    text, found = await resolve_instructions(engine, account_id, ref)
    return {**agent, "instructions": text}, found


async def tuning(engine: Engine, account_id: str, used: Mapping[str, Any]) -> dict[str, Any]:
    """The temperature and max tokens of the version `used` names ({name, version}): a run of
    a prompt version without an agent (an experiment's) takes them from its config."""
    found = await db.prompts_named(engine, str(used["name"]), [account_id])
    version = await db.get_version(engine, found[0]["id"], int(used["version"])) if found else None
    config = (version or {}).get("config") or {}
    return {k: config[k] for k in ("temperature", "max_tokens") if config.get(k) is not None}


async def check_ref(engine: Engine, account_id: str, ref: Mapping[str, Any]) -> None:
    """Refuse (422) an agent's prompt reference that cannot resolve in its account now: an
    unknown prompt, label or version, or a template its variables cannot render."""
    try:
        await resolve_instructions(engine, account_id, ref)
    except NotFoundError as exc:
        raise InvalidError(exc.message, code="unknown_prompt") from None


@dataclass(frozen=True)
class Prompts:
    engine: Engine

    async def find(
        self, caller: Caller, name: str, account_id: str | None = None
    ) -> dict[str, Any]:
        """The prompt called `name` the caller may see (404 otherwise; 422 when the name is
        in several of their accounts and `account_id` does not say which)."""
        if account_id is not None and not caller.sees(account_id):
            raise NotFoundError("prompt not found")
        scope = [account_id] if account_id else None if caller.site_admin else caller.account_ids
        found = await db.prompts_named(self.engine, name, scope)
        if not found:
            raise NotFoundError("prompt not found")
        if len(found) > 1:
            raise InvalidError(
                f"{len(found)} of your accounts have a prompt {name!r}: give account_id",
                code="ambiguous",
            )
        return found[0]

    async def visible(self, caller: Caller) -> list[dict[str, Any]]:
        return await db.list_prompts(self.engine, None if caller.site_admin else caller.account_ids)

    async def detail(self, caller: Caller, name: str, account_id: str | None) -> dict[str, Any]:
        prompt = await self.find(caller, name, account_id)
        labels = await db.labels_of(self.engine, prompt["id"])
        versions = await db.versions_of(self.engine, prompt["id"])
        for version in versions:
            version["labels"] = sorted(k for k, v in labels.items() if v == version["version"])
        return {**prompt, "labels": labels, "versions": versions}

    async def create(self, caller: Caller, fields: Mapping[str, Any]) -> dict[str, Any]:
        account_id = fields.get("account_id") or next(iter(sorted(caller.account_ids)), None)
        if account_id is None or not caller.sees(account_id):
            raise InvalidError("no account to create the prompt in", code="no_account")
        name = check_name(str(fields.get("name") or ""))
        created = await db.create_prompt(
            self.engine,
            account_id,
            name,
            _version_fields(fields),
            check_labels(fields.get("labels")),
            caller.user_id,
        )
        if created is None:
            raise ConflictError(f"a prompt named {name!r} exists already", code="exists")
        return await self.detail(caller, name, account_id)

    async def add_version(
        self, caller: Caller, name: str, account_id: str | None, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        prompt = await self.find(caller, name, account_id)
        number = await db.add_version(
            self.engine,
            prompt["id"],
            _version_fields(fields),
            check_labels(fields.get("labels")),
            caller.user_id,
        )
        return await self.version(caller, name, prompt["account_id"], {"version": number})

    async def version(
        self, caller: Caller, name: str, account_id: str | None, ref: Mapping[str, Any]
    ) -> dict[str, Any]:
        prompt = await self.find(caller, name, account_id)
        found = await _pick(self.engine, prompt, ref)
        return _version_out(found, prompt, await db.labels_of(self.engine, prompt["id"]))

    async def move_label(
        self,
        caller: Caller,
        name: str,
        account_id: str | None,
        label: str,
        version: int | None,
    ) -> dict[str, Any]:
        """Point `label` at `version` (None removes it); the move as recorded, or, when the
        label was there already, the same shape with `from_version == to_version`."""
        check_labels([label])
        prompt = await self.find(caller, name, account_id)
        if version is not None and await db.get_version(self.engine, prompt["id"], version) is None:
            raise NotFoundError(f"prompt {name!r} has no version {version}")
        if version is None and await db.label_version(self.engine, prompt["id"], label) is None:
            raise NotFoundError(f"prompt {name!r} has no label {label!r}")
        moved = await db.move_label(self.engine, prompt["id"], label, version, caller.user_id)
        return moved or {"label": label, "from_version": version, "to_version": version}

    async def delete(self, caller: Caller, name: str, account_id: str | None) -> None:
        prompt = await self.find(caller, name, account_id)
        await db.delete_prompt(self.engine, prompt["id"])

    async def history(self, caller: Caller, name: str, account_id: str | None) -> dict[str, Any]:
        prompt = await self.find(caller, name, account_id)
        return {"moves": await db.history(self.engine, prompt["id"])}

    async def render(
        self,
        caller: Caller,
        name: str,
        account_id: str | None,
        ref: Mapping[str, Any],
        values: Mapping[str, Any],
    ) -> dict[str, Any]:
        found = await self.version(caller, name, account_id, ref)
        return {
            "name": found["name"],
            "version": found["version"],
            "config": found["config"],
            "text": templates.render(found["content"], values),
        }

    async def diff(
        self, caller: Caller, name: str, account_id: str | None, old: int, new: int
    ) -> dict[str, Any]:
        """Both versions whole: the page lays them side by side and diffs them."""
        prompt = await self.find(caller, name, account_id)
        pair = []
        for number in (old, new):
            found = await db.get_version(self.engine, prompt["id"], number)
            if found is None:
                raise NotFoundError(f"prompt {name!r} has no version {number}")
            pair.append(found)
        return {"name": prompt["name"], "old": pair[0], "new": pair[1]}
