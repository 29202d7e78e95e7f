"""Which account a new thing of the evaluation loop goes in: the one named, or the caller's.

One rule for datasets and evaluators (prompts and review queues could share it):
a member creates in their accounts, a site admin in any account that exists;
an account that does not exist is 422 `no_account` here, not the vague 409 the
insert's foreign key would give. Imports `db.accounts`, `errors`.
"""

from __future__ import annotations

from gapless.db import Engine
from gapless.db import accounts as db_accounts
from gapless.db.accounts import Caller
from gapless.errors import InvalidError


async def account_for(engine: Engine, caller: Caller, given: str | None, what: str) -> str:
    """`given`, or the caller's first account; `InvalidError` when the caller may not create
    a `what` there."""
    account_id = given or next(iter(sorted(caller.account_ids)), None)
    if account_id is not None and (
        account_id in caller.account_ids
        or (caller.site_admin and await db_accounts.find_account(engine, account_id) == account_id)
    ):
        return account_id
    raise InvalidError(f"no account to create the {what} in", code="no_account")
