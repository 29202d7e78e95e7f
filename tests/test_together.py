"""Group commit (`together`): asks made in one loop turn are done as one, each caller gets
its own answer, and a group that fails as a whole is done again one by one."""

from __future__ import annotations

import asyncio

import pytest

from gapless.together import Together


class Refused(Exception):
    pass


def recording(groups: list[list[int]]) -> Together[int, int]:
    """Doubles each ask; refuses 13 alone (its own answer) and fails any group holding 99."""

    async def many(asks: list[int]) -> list[int | Exception]:
        groups.append(list(asks))
        if 99 in asks and len(asks) > 1:
            raise RuntimeError("the group as a whole")
        if asks == [99]:
            raise Refused("99 alone")
        return [Refused("13") if ask == 13 else ask * 2 for ask in asks]

    return Together(many)


async def test_asks_of_one_turn_are_one_group_and_each_gets_its_own_answer() -> None:
    groups: list[list[int]] = []
    together = recording(groups)
    answers = list(await asyncio.gather(together(1), together(2), together(3)))
    assert answers == [2, 4, 6]
    assert groups == [[1, 2, 3]]


async def test_an_answer_that_is_an_exception_goes_to_its_caller_only() -> None:
    groups: list[list[int]] = []
    together = recording(groups)
    answers = await asyncio.gather(together(1), together(13), together(3), return_exceptions=True)
    assert answers[0] == 2 and answers[2] == 6
    assert isinstance(answers[1], Refused)
    assert groups == [[1, 13, 3]]


async def test_a_group_that_fails_as_a_whole_is_done_again_one_by_one() -> None:
    groups: list[list[int]] = []
    together = recording(groups)
    answers = await asyncio.gather(together(1), together(99), together(3), return_exceptions=True)
    assert answers[0] == 2 and answers[2] == 6
    assert isinstance(answers[1], Refused)
    assert groups == [[1, 99, 3], [1], [99], [3]]


async def test_a_lone_ask_that_fails_raises_to_its_caller() -> None:
    together = recording([])
    with pytest.raises(Refused):
        await together(99)


async def test_an_ask_made_after_a_group_was_answered_starts_the_next_group() -> None:
    groups: list[list[int]] = []
    together = recording(groups)
    assert await together(1) == 2
    assert await together(2) == 4
    assert groups == [[1], [2]]
