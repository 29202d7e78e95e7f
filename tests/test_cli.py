"""The `gapless` command as a user runs it: first start, tokens, admin commands, terminal chat."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

GAPLESS = str(Path(sys.executable).parent / "gapless")


def env_for(data: Path) -> dict[str, str]:
    return {
        **os.environ,
        "GAPLESS_DATA_DIR": str(data),
        "GAPLESS_PROVIDERS": '["demo"]',
        "GAPLESS_DEMO_DELAY": "0.001",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    port = free_port()
    process = subprocess.Popen(
        [GAPLESS, "serve", "--port", str(port)],
        env=env_for(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: dict[str, str] = {}
    for line in process.stdout:
        key, _, value = line.strip().partition(": ")
        lines[key if value else line.strip()] = value
        if key == "token":
            break
    try:
        yield f"http://127.0.0.1:{port}", lines, tmp_path
    finally:
        process.terminate()
        process.wait(30)


def wait_ready(url: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(url + "/openapi.json", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        import time

        time.sleep(0.05)
    raise AssertionError("server did not come up")


def test_first_start_creates_everything_and_prints_url_and_token(
    served: tuple[str, dict[str, str], Path],
) -> None:
    url, lines, data = served
    assert f"Gapless is running at {url}" in lines
    assert lines["models"] == "demo:default (default demo:default)"
    assert lines["token"].startswith("gl_")
    assert lines["email"] == "admin@localhost" and lines["password"]
    assert (data / "gapless.db").exists()
    wait_ready(url)
    me = httpx.get(url + "/api/session", headers={"Authorization": f"Bearer {lines['token']}"})
    assert me.status_code == 200 and me.json()["user"]["site_admin"] is True
    signed = httpx.post(
        url + "/api/session", json={"email": lines["email"], "password": lines["password"]}
    )
    assert signed.status_code == 200


def test_terminal_chat_streams_a_reply_through_the_public_api(
    served: tuple[str, dict[str, str], Path],
) -> None:
    url, lines, data = served
    wait_ready(url)
    result = subprocess.run(
        [GAPLESS, "chat", "--url", url, "--token", lines["token"]],
        input="Hello terminal\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=env_for(data),
    )
    assert result.returncode == 0, result.stderr
    assert "You said: *Hello terminal*" in result.stdout
    assert "Choose a real model in the picker" in result.stdout  # the reply ran to its end


def test_token_and_admin_commands(tmp_path: Path) -> None:
    env = env_for(tmp_path)

    def run(*args: str) -> str:
        done = subprocess.run(
            [GAPLESS, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run("token").startswith("token: gl_")
    assert run("account", "add", "team").startswith("account: acc_")
    added = subprocess.run(
        [GAPLESS, "user", "add", "bob@example.com", "--password-stdin", "--account", "team"],
        input="a long unguessable passphrase\n",
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("user: usr_")
    assert run("member", "remove", "team", "bob@example.com").strip() == "ok"
    assert run("member", "add", "team", "bob@example.com").strip() == "ok"
    refused = subprocess.run(
        [GAPLESS, "user", "add", "bob@example.com"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1 and "exists already" in refused.stderr


def test_passwords_never_come_from_the_command_line(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    on_argv = subprocess.run(
        [GAPLESS, "user", "add", "eve@example.com", "--password", "visible in ps aux"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert on_argv.returncode == 2 and "No such option" in on_argv.stderr
    weak = subprocess.run(
        [GAPLESS, "user", "add", "eve@example.com", "--password-stdin"],
        input="password1234\n", env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )
    assert weak.returncode == 1 and "common" in weak.stderr
    changed = subprocess.run(
        [GAPLESS, "user", "password", "admin@localhost", "--password-stdin"],
        input="tangerine hedgehog voyage\n", env=env, cwd=tmp_path, capture_output=True,
        text=True, timeout=120,
    )
    assert changed.returncode == 0, changed.stderr
