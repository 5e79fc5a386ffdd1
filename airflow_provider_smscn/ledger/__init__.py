"""A durable ledger of delivery reports, pull leases, send intents and sent records.

Why it exists: sms.cn hands out every delivery report exactly ONCE, to whoever pulls
``ac=status`` first (and every sent record once, via ``ac=query``). Many sensors and triggers,
in different processes and on different hosts, wait on reports of the same account. If each of
them pulled for itself, one waiter would receive (and drop) the report another is waiting for.
So the rules are:

* **Store before use.** Whoever pulls writes every report it received into the ledger, in one
  transaction, before doing anything else with it (even before looking for its own). A report
  that reached us is then never lost to the other waiters. Every report is a row (the vendor may
  report one id more than once); a batch stored twice under its pull id lands once. A waiter's
  answer for an id is its latest report by ``retime``.
* **Everyone reads the ledger.** A waiter first looks for its own message ids in the ledger and
  only considers pulling when they are not there yet.
* **The pull lease rations pulls.** Per account there is one row with ``last_pull_at``. A waiter
  may pull only if a single conditional ``UPDATE ... SET last_pull_at = now WHERE account = ? AND
  last_pull_at <= now - interval`` changes that row (the row is inserted on first use; of racing
  inserters, only the one whose insert lands wins). The database serialises updates of one
  row (PostgreSQL re-checks the ``WHERE`` against the committed row after waiting for the row
  lock; SQLite runs every write transaction under ``BEGIN IMMEDIATE``), so however many
  processes or hosts race, at most one wins per interval, and the winners' ``now`` values are at
  least ``interval`` apart. The lease is a time slot, not a lock: nothing has to be released, and
  a waiter that dies holding it only delays the next pull by one interval.
* **Send intents make sends retry-safe.** An execution *claims* deterministic message ids
  before the send request (``claim_intents``: insert as ``pending``, or move from ``rejected``
  back to ``pending``, each a conditional write whose effect is checked) and sends only what it
  claimed; it marks them afterwards (``accepted``, ``rejected``, ``unknown``), only where it is
  still the claimant. Of two executions racing for an id, exactly one sends it.

Times are unix seconds by the ledger database's clock where it has one (PostgreSQL, MySQL), so
hosts with skewed clocks still agree; on SQLite (one host) by the caller's clock. A pull time
more than one interval in the future never holds the lease.

SQLite (``sqlite:////abs/path.db``) is fine for one host (WAL, busy timeout, many processes);
use PostgreSQL when waiters run on several hosts. Only SQLAlchemy Core is used, and only what
SQLAlchemy 1.4 and 2.x both offer. SQLAlchemy is imported lazily: importing this module is cheap.
Message content (it carries one-time codes) is not stored unless asked for, and phone numbers are
masked in every ``repr``.
"""

from airflow_provider_smscn.ledger.store import INTENT_STATES, SendIntent, SmsCnLedger

__all__ = ["INTENT_STATES", "SendIntent", "SmsCnLedger"]
