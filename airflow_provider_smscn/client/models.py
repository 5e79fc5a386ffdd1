"""Typed results of the API's actions.

Every ``repr`` masks phone numbers and never shows message content: results get logged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .codes import result_meaning
from .redact import mask_mobile, mask_mobiles


@dataclass(frozen=True)
class SendResult:
    """Outcome of one accepted ``ac=sendcode`` request (or several, when sent in chunks).

    ``mobileids`` holds one message id per number, in the order of ``mobiles``.
    """

    mobiles: list[str]
    mobileids: list[str]
    code: int = 100
    message: str = ""

    def __repr__(self) -> str:
        return (f"SendResult(mobiles={mask_mobiles(self.mobiles)}, mobileids={len(self.mobileids)} ids, "
                f"code={self.code})")


@dataclass(frozen=True)
class DeliveryReport:
    """One delivery report from ``ac=status``; ``delivered`` is true only for result code 100."""

    mobile: str
    mobileid: str
    resultcode: int
    status: str = ""
    retime: str = ""

    @property
    def delivered(self) -> bool:
        return self.resultcode == 100

    @property
    def meaning(self) -> str:
        """English meaning of ``resultcode``."""
        return result_meaning(self.resultcode)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for XCom and trigger events (the sensor's return value)."""
        data = asdict(self)
        data["delivered"] = self.delivered
        data["meaning"] = self.meaning
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeliveryReport:
        return cls(
            mobile=str(data["mobile"]),
            mobileid=str(data["mobileid"]),
            resultcode=int(data["resultcode"]),
            status=str(data.get("status") or ""),
            retime=str(data.get("retime") or ""),
        )

    def __repr__(self) -> str:
        return (f"DeliveryReport(mobile={mask_mobile(self.mobile)!r}, mobileid={self.mobileid!r}, "
                f"resultcode={self.resultcode}, status={self.status!r}, retime={self.retime!r})")


@dataclass(frozen=True)
class SentRecord:
    """One sent record from ``ac=query``; ``status`` 1 = submitted, 0 = submission failed.

    ``content`` is what was sent, a one-time code included: it is kept out of ``repr``.
    """

    mobile: str
    sendtime: str
    content: str = field(default="", repr=False)
    status: int = 1

    def __repr__(self) -> str:
        return (f"SentRecord(mobile={mask_mobile(self.mobile)!r}, sendtime={self.sendtime!r}, "
                f"status={self.status})")
