"""The `gapless` command: `serve`, `worker`, `token`, admin commands, the terminal `chat`.

Imports `runtime`, `web`, `accounts`, `client`, `config`.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import typer

from gapless.accounts import Accounts
from gapless.config import Settings
from gapless.errors import GaplessError

T = TypeVar("T")
app = typer.Typer(
    help="Gapless: chat with AI models; replies never lose a chunk.", no_args_is_help=True
)
account_app = typer.Typer(help="Accounts.")
user_app = typer.Typer(help="Users.")
member_app = typer.Typer(help="Account membership.")
app.add_typer(account_app, name="account")
app.add_typer(user_app, name="user")
app.add_typer(member_app, name="member")


def _with_runtime(work: Callable[[Any], Awaitable[T]]) -> T:
    from gapless.runtime import build

    async def main() -> T:
        runtime = build(Settings())
        await runtime.start()
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    try:
        return asyncio.run(main())
    except GaplessError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(
        1, help="API processes on this one port (more than 1 needs the Redis log, a shared queue)."
    ),
) -> None:
    """Run the service: web app and API (and, with the in-process queue, generation)."""
    settings = Settings()
    if workers > 1:
        problem = _scale_problem(settings)
        if problem:
            typer.echo(f"error: --workers {workers} {problem}", err=True)
            raise typer.Exit(2)
        _serve_processes(settings, host, port, workers)
    else:
        run_loop(_serve_here(settings, host, port))


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (uvicorn[standard] brings it): the benchmark's
    profile showed the stock loop's own overhead as 40% of the server's CPU."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def _scale_problem(settings: Settings) -> str:
    """Why several processes cannot share this configuration, or ""."""
    if settings.events_url.startswith("memory://"):
        return "needs a shared event log: set GAPLESS_EVENTS_URL=redis://..."
    if settings.queue_url.startswith("memory://"):
        return (
            "needs a shared job queue: set GAPLESS_QUEUE_URL=redis://... or postgresql://..."
            " (and run `gapless worker`)"
        )
    return ""


def _announce(settings: Settings, runtime: Any, created: Any, host: str, port: int) -> None:
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    typer.echo(f"Gapless is running at {url}")
    typer.echo(
        f"models: {', '.join(m.id for m in runtime.chats.models())} "
        f"(default {runtime.chats.default_model})"
    )
    if created:
        typer.echo(f"email: {created.email}")
        typer.echo(f"password: {created.password}")
        typer.echo(f"token: {created.token}")
    else:
        typer.echo("token: run `gapless token` to print a new API token")
    sys.stdout.flush()


_UVICORN: dict[str, Any] = {
    "log_level": "warning",
    # Bounds on what a client may hold before the app sees a request (web/h1.py): a
    # request's head at most 32 KiB and 10 s; an idle keep-alive connection 5 s.
    "http": "gapless.web.h1:LimitedHttpToolsProtocol",
    "h11_max_incomplete_event_size": 32 * 1024,  # the same head bound, should h11 be chosen
    "timeout_keep_alive": 5,
    "ws": "gapless.web.wire:WireProtocol",  # uvicorn's websockets-sansio, lighter (web/wire.py)
    "ws_max_size": 64 * 1024,
    # Per-message deflate off: the compressor of one socket holds about 46 KB (zlib's
    # window and hash chains) for the socket's life, and compresses every frame once per
    # subscriber. A client that offers it (every browser does) gets plain frames.
    "ws_per_message_deflate": False,
    "timeout_graceful_shutdown": 2,
    "lifespan": "on",
}


async def _serve_here(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from gapless.runtime import build, settle
    from gapless.web.app import create_app

    runtime = build(settings)
    created = await runtime.start()
    _announce(settings, runtime, created, host, port)
    config = uvicorn.Config(create_app(runtime), host=host, port=port, **_UVICORN)
    settle()
    try:
        await uvicorn.Server(config).serve()
    finally:
        await runtime.close()


def _serve_processes(settings: Settings, host: str, port: int, workers: int) -> None:
    """Migrate and bootstrap once here, then `workers` processes share the port."""
    import uvicorn

    from gapless.runtime import build

    async def prepare() -> None:
        runtime = build(settings)
        try:
            created = await runtime.start()
            _announce(settings, runtime, created, host, port)
        finally:
            await runtime.close()

    asyncio.run(prepare())
    uvicorn.run(
        "gapless.web.app:create_app_from_settings",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **_UVICORN,
    )


@app.command()
def worker(
    concurrency: int = typer.Option(4, help="Generations run at once by this process."),
    grace: float = typer.Option(10.0, help="Seconds runs may finish in after SIGTERM."),
) -> None:
    """Run generations from the job queue (GAPLESS_QUEUE_URL=redis://... or postgresql://...)."""
    from gapless.worker import run

    try:
        run_loop(run(Settings(), concurrency, grace))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def token(email: str = typer.Option("", help="User (default: the first admin).")) -> None:
    """Print a new API token."""
    value = _with_runtime(lambda rt: Accounts(rt.engine).new_token(email or None))
    typer.echo(f"token: {value}")


@account_app.command("add")
def account_add(name: str) -> None:
    """Create an account."""
    account_id = _with_runtime(lambda rt: Accounts(rt.engine).add_account(name))
    typer.echo(f"account: {account_id}")


def _password(from_stdin: bool, ask: bool) -> str | None:
    """A password from the first line of stdin, or asked twice at a terminal (hidden):
    never from the command line, which every user of the machine sees in `ps`."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n") or None
    if ask and sys.stdin.isatty():
        value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return value
    return None


@user_app.command("add")
def user_add(
    email: str,
    name: str = typer.Option("", help="Display name."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the web sign-in password from stdin's first line."
    ),
    account: str = typer.Option("", help="Account (name or id) to join."),
    admin: bool = typer.Option(False, help="Site admin: sees every account."),
) -> None:
    """Create a user (and optionally make them a member of an account). At a terminal the
    password is asked for; without one the user cannot sign in on the web until given one
    (`gapless user password`)."""
    password = _password(password_stdin, ask=True)

    async def work(rt: Any) -> str:
        accounts = Accounts(rt.engine, rt.log, password_min=rt.settings.password_min)
        user_id = await accounts.add_user(email, name, password, admin)
        if account:
            await accounts.add_member(account, email)
        return user_id

    typer.echo(f"user: {_with_runtime(work)}")


@user_app.command("password")
def user_password(
    email: str,
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the new password from stdin's first line."
    ),
) -> None:
    """Set a user's web sign-in password (asked at a terminal, or from stdin)."""
    password = _password(password_stdin, ask=True)
    if not password:
        typer.echo("error: no password given (a terminal, or --password-stdin)", err=True)
        raise typer.Exit(2)

    async def work(rt: Any) -> None:
        accounts = Accounts(rt.engine, rt.log, password_min=rt.settings.password_min)
        await accounts.set_password(email, password)

    _with_runtime(work)
    typer.echo("ok")


@user_app.command("remove")
def user_remove(email: str) -> None:
    """Delete a user: their memberships, sessions and tokens end (their streams too)."""

    async def work(rt: Any) -> None:
        await Accounts(rt.engine, rt.log).remove_user(email)

    _with_runtime(work)
    typer.echo("ok")


@member_app.command("add")
def member_add(account: str, email: str, role: str = "member") -> None:
    """Make a user a member of an account."""
    _with_runtime(lambda rt: Accounts(rt.engine).add_member(account, email, role))
    typer.echo("ok")


@member_app.command("remove")
def member_remove(account: str, email: str) -> None:
    """End a user's membership of an account (their live subscriptions end too)."""
    _with_runtime(lambda rt: Accounts(rt.engine, rt.log).remove_member(account, email))
    typer.echo("ok")


@app.command()
def chat(
    url: str = typer.Option("http://127.0.0.1:8000", envvar="GAPLESS_URL"),
    token: str = typer.Option("", envvar="GAPLESS_TOKEN", help="API token (`gapless token`)."),
    chat_id: str = typer.Option("", "--chat", help="Continue this chat."),
    model: str = typer.Option("", help="Model, as provider:model."),
    agent: str = typer.Option("", "--agent", help="Start the chat with this agent (its id)."),
) -> None:
    """Chat in the terminal through the public API (Ctrl-C stops a reply; Ctrl-D quits;
    a tool call that needs approval asks y/n)."""
    from gapless.client import Client

    if not token:
        typer.echo("error: give --token or set GAPLESS_TOKEN (see `gapless token`)", err=True)
        raise typer.Exit(2)
    client = Client(url, token)
    chat_id = chat_id or client.new_chat(model or None, agent or None)["id"]
    typer.echo(f"chat {chat_id} — type a message; Ctrl-C stops a reply, Ctrl-D quits.")

    def show(kind: str, text: str) -> None:
        styled = typer.style(text, dim=True) if kind == "thinking" else text
        sys.stdout.write(styled)
        sys.stdout.flush()

    while True:
        try:
            line = input("\n> ")
        except EOFError:
            return
        if not line.strip():
            continue
        try:
            sent = client.send(chat_id, line, model or None)
        except RuntimeError as exc:
            typer.echo(f"error: {exc}", err=True)
            continue
        reply_id = sent["assistant_message"]["id"]
        try:
            final = client.follow(chat_id, reply_id, show)
        except KeyboardInterrupt:
            final = client.stop(reply_id)
            typer.echo("\n[stopped]")
        if final.get("error"):
            typer.echo(f"\n[{final['status']}: {final['error']['message']}]")


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
