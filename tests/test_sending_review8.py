"""Review 8: cases where a send still ends green without its number called, or calls it twice.

The shipped sandbox (id dedup off, as the vendor document has it), a real SQLite ledger, a clock
that never sleeps. Each test states the behaviour a user relies on; they fail on today's code.
"""

from __future__ import annotations

from tests.test_sending import api_for, box, called, ledger, send  # noqa: F401  (fixtures)

B = "13900005552"


def test_a_trailing_slash_edited_into_the_connection_does_not_make_the_retry_call_again(box, ledger):  # noqa: F811
    """The account key (which scopes intents, leases and reports in the ledger) is ``uid@host`` +
    the URL's path as typed, so ``.../voice/`` and ``.../voice`` are two accounts for one vendor
    account. A user who fixes the Connection's host between an attempt and its retry (or two
    Connections of one account spelled differently) gets a retry that finds no intents and calls
    everyone again (and waiters that never see reports pulled under the other spelling)."""
    first = api_for(box.url.rstrip("/") + "/", ledger)
    retry = api_for(box.url.rstrip("/"), ledger)
    ids = send(first, [B])
    assert send(retry, [B]) == ids
    assert called(box) == [B]
