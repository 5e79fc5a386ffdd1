"""A durable local spool for pulled delivery reports the ledger could not take.

Why it exists: the vendor hands each report out once. If the ledger fails right after a pull
(SQLite locked past its busy timeout, a PostgreSQL failover), the pulled batch exists only in this
process's memory; dropping it loses those reports for good. The batch goes into a file here
instead, and whoever waits next on this host writes it into the ledger once the ledger answers.

A batch is one JSON file, written to a temporary name, flushed and fsynced, renamed into place and
the directory fsynced: a crash leaves either the whole batch or none of it. Each batch keeps the
pull id it was pulled under, so writing it twice (two processes replaying the same file, a crash
between the ledger write and the file's removal) stores its reports once: the ledger's
``store_reports`` is idempotent per ``(account, pull_id, position)``.

Batches are kept per ledger (a sub-directory named by a hash of the ledger URL, password hidden),
so a batch pulled for one ledger never ends up in another. Files hold phone numbers (reports do):
they are created ``0600`` in a ``0700`` directory, and no log line names a number.
Standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_smscn.client.models import DeliveryReport

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

#: Name of the spool directory under AIRFLOW_HOME when ``[smscn] spool_dir`` is not set.
DEFAULT_SPOOL_SUBDIR = "smscn_spool"
_SUFFIX = ".json"
_FORMAT = 1


def default_spool_dir() -> Path:
    """``$AIRFLOW_HOME/smscn_spool`` (Airflow's own default home is ``~/airflow``)."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return Path(home).absolute() / DEFAULT_SPOOL_SUBDIR


@dataclass(frozen=True)
class SpooledBatch:
    """One pull the ledger did not take: its account, pull id and reports, in pull order."""

    path: Path
    account: str
    pull_id: str
    reports: list[DeliveryReport]

    def __repr__(self) -> str:  # reports hold numbers: a count, never the list
        return f"SpooledBatch(path={str(self.path)!r}, pull_id={self.pull_id!r}, reports={len(self.reports)})"


class Spool:
    """Batches of pulled reports waiting for the ledger, in files under ``directory/<ledger hash>/``.

    :param directory: the spool root (``[smscn] spool_dir``, default :func:`default_spool_dir`).
    :param ledger_key: what names the ledger (its URL with the password hidden).
    """

    def __init__(self, directory: str | os.PathLike[str], ledger_key: str) -> None:
        digest = hashlib.sha256(ledger_key.encode()).hexdigest()[:16]
        self.directory = Path(directory).absolute() / digest

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r})"

    def put(self, account: str, pull_id: str, reports: Sequence[DeliveryReport]) -> Path:
        """Keep one pulled batch on disk, atomically and durably; returns its file."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{pull_id}{_SUFFIX}"
        data = json.dumps({
            "format": _FORMAT, "account": account, "pull_id": pull_id,
            "reports": [{"mobile": r.mobile, "mobileid": r.mobileid, "resultcode": r.resultcode,
                         "status": r.status, "retime": r.retime} for r in reports],
        }).encode()
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)  # created 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            final = self.directory / name
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.directory)
        return final

    def pending(self) -> list[Path]:
        """The kept batches, oldest first (cheap when there are none: one ``scandir``)."""
        try:
            with os.scandir(self.directory) as entries:
                names = sorted(e.name for e in entries
                               if e.name.endswith(_SUFFIX) and not e.name.startswith("."))
        except FileNotFoundError:
            return []
        return [self.directory / name for name in names]

    def load(self, path: Path) -> SpooledBatch:
        data = json.loads(path.read_bytes())
        if data.get("format") != _FORMAT:
            raise ValueError(f"unknown spool format {data.get('format')!r}")
        return SpooledBatch(path, str(data["account"]), str(data["pull_id"]),
                            [DeliveryReport.from_dict(item) for item in data["reports"]])

    def remove(self, path: Path) -> None:
        """Forget a batch once the ledger holds it (another process may have removed it already)."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        _fsync_dir(self.directory)

    def replay(self, store: Callable[[str, list[DeliveryReport], str], object]) -> int:
        """Write every kept batch through ``store(account, reports, pull_id)``; returns reports written.

        Stops at the first batch ``store`` raises on (the ledger is still away) and lets that error
        through; the batches not written stay for the next call. A file that cannot be read is moved
        aside (``.bad``), logged, and never retried: it cannot be written anywhere.
        """
        written = 0
        for path in self.pending():
            try:
                batch = self.load(path)
            except FileNotFoundError:
                continue  # replayed and removed by another process meanwhile
            except (OSError, ValueError, KeyError, TypeError):
                log.exception("smscn spool: %s cannot be read; moved aside as .bad", path.name)
                with contextlib.suppress(OSError):
                    os.replace(path, path.with_suffix(".bad"))
                continue
            store(batch.account, batch.reports, batch.pull_id)
            self.remove(path)
            written += len(batch.reports)
        return written


def _fsync_dir(directory: Path) -> None:
    """Make a rename or an unlink in ``directory`` survive a power cut (POSIX; a no-op elsewhere)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
