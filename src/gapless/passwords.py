"""Passwords: Argon2id hashes at OWASP's cost, older scrypt hashes still verified (and
upgraded by the caller), and the policy a new password must meet.

Hashing costs tens of milliseconds of CPU by design: callers on the event loop
run these in threads (`HASHING`), two at once, so sign-in attempts
never stall the streams. An unknown email is verified against a dummy hash, so it
takes as long as a known one. Imports `errors`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from gapless.errors import InvalidError

MAX_LENGTH = 1000  # characters; longer is refused before any hashing
# OWASP Password Storage Cheat Sheet: Argon2id, 19 MiB, 2 iterations, 1 lane.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Hashes at once per process (the machine's cores, no more); the rest wait their turn.
HASHING = ThreadPoolExecutor(2, thread_name_prefix="gapless-hash")


@cache
def common() -> frozenset[str]:
    """The 30,000 most common passwords of zxcvbn's leaked-password list."""
    return frozenset(FREQUENCY_LISTS["passwords"])


def problem(password: str, minimum: int, hints: tuple[str, ...] = ()) -> str:
    """Why `password` may not be chosen, or "" (ASVS 2.1: length, no breached or guessable
    passwords, no composition rules)."""
    if len(password) < minimum:
        return f"a password needs at least {minimum} characters"
    if len(password) > MAX_LENGTH:
        return f"a password has at most {MAX_LENGTH} characters"
    if password.lower() in common():
        return "this password is among the most common ones; choose another"
    # zxcvbn is quadratic in the length: its first 100 characters tell enough.
    if zxcvbn(password[:100], user_inputs=list(hints))["score"] < 3:
        return "this password is too easy to guess; a few unrelated words make a good one"
    return ""


def check(password: str, minimum: int, hints: tuple[str, ...] = ()) -> None:
    found = problem(password, minimum, hints)
    if found:
        raise InvalidError(found, code="weak_password")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


@cache
def dummy() -> str:
    return hash_password("not a password anyone has: a dummy for unknown emails")


def verify(password: str, stored: str | None) -> bool:
    """Whether `password` matches `stored` (Argon2 or the older scrypt); with no stored hash
    (an unknown email, a user without a password) a dummy is verified, for the same time."""
    if not stored:
        _argon2(password, dummy())
        return False
    if stored.startswith("scrypt$"):
        return _scrypt(password, stored)
    return _argon2(password, stored)


def outdated(stored: str) -> bool:
    """Whether a hash that just verified should be replaced (scrypt, or weaker parameters)."""
    return stored.startswith("scrypt$") or HASHER.check_needs_rehash(stored)


async def verify_off_loop(password: str, stored: str | None) -> bool:
    return await asyncio.get_running_loop().run_in_executor(HASHING, verify, password, stored)


async def hash_off_loop(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(HASHING, hash_password, password)


def _argon2(password: str, stored: str) -> bool:
    try:
        return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _scrypt(password: str, stored: str) -> bool:
    _, salt, digest = stored.split("$")
    check = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
    return hmac.compare_digest(check.hex(), digest)
