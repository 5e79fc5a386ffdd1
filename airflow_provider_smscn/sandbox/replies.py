"""Reply bodies in the document's three formats, and the ``stat`` messages.

A reply is built as plain ordered data (``{"stat": "100", "total": "2", "values": [{...}]}``) and
rendered here, so that the three formats cannot drift apart. Shapes follow the document's examples
and docs/api-decisions.md rows 6 to 11: compact JSON, ``<result>`` XML without a declaration and
with list items numbered ``value0``, ``value1``, and ``sms&key=value`` text with dotted list keys.
"""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape

JSON = "json"
XML = "xml"
TXT = "txt"
FORMATS = (JSON, XML, TXT)

# The document's wording of each code (docs/api.md, "stat codes": 151 is listed twice there, as
# 超出设置限制 and as 每小时发送量限制; the sandbox only sends it for the hourly cap). Codes 110-120
# outside the document come from public clients of the older SMS endpoints; they only appear when
# forced.
MESSAGES_ZH: dict[int, str] = {
    100: "发送成功",
    101: "验证失败",
    102: "短信不足",
    103: "操作失败",
    104: "非法字符",
    105: "内容过多",
    106: "号码过多",
    107: "频率过快",
    108: "号码内容空",
    109: "账号冻结",
    110: "单号码发送频率过快",
    111: "系统暂停发送",
    112: "号码错误",
    113: "定时时间格式不对",
    114: "账号被锁，10分钟后登录",
    115: "连接失败",
    116: "禁止接口发送",
    117: "绑定IP不正确",
    118: "验证时间戳格式不对",
    119: "超过验证时效",
    120: "系统升级",
    124: "重复提交过多",
    151: "每小时发送量限制",
    152: "每天发送量限制",
    161: "未添加短信模板",
    162: "模板格式不正确",
    163: "模板ID不正确",
    164: "全文模板不匹配",
    166: "模板内容重复",
    167: "模板审核中",
    168: "模板审核不通过",
    169: "变量内容超过限制",
}

MESSAGES_EN: dict[int, str] = {
    100: "SUCCESS",
    101: "AUTHENTICATION FAILED",
    102: "INSUFFICIENT BALANCE",
    103: "OPERATION FAILED",
    104: "ILLEGAL CHARACTERS",
    105: "CONTENT TOO LONG",
    106: "TOO MANY NUMBERS",
    107: "TOO FREQUENT",
    108: "NUMBER OR CONTENT EMPTY",
    109: "ACCOUNT FROZEN",
    110: "SINGLE NUMBER SENT TOO FREQUENTLY",
    111: "SENDING PAUSED BY THE SYSTEM",
    112: "WRONG NUMBER",
    113: "SCHEDULE TIME FORMAT WRONG",
    114: "ACCOUNT LOCKED FOR 10 MINUTES",
    115: "CONNECTION FAILED",
    116: "API SENDING FORBIDDEN",
    117: "BOUND IP INCORRECT",
    118: "TIMESTAMP FORMAT WRONG",
    119: "SIGNATURE EXPIRED",
    120: "SYSTEM UPGRADE",
    124: "TOO MANY DUPLICATE SUBMISSIONS",
    151: "HOURLY SEND LIMIT",
    152: "DAILY SEND LIMIT",
    161: "NO TEMPLATE ADDED",
    162: "TEMPLATE FORMAT WRONG",
    163: "TEMPLATE ID WRONG",
    164: "CONTENT DOES NOT MATCH TEMPLATE",
    166: "TEMPLATE CONTENT DUPLICATED",
    167: "TEMPLATE UNDER REVIEW",
    168: "TEMPLATE REJECTED",
    169: "VARIABLE CONTENT OVER LIMIT",
}

# Success of the balance action reads 成功 (public clients show it), not 发送成功.
PLAIN_SUCCESS_ZH = "成功"


def message(code: int, *, english: bool, plain_success: bool = False) -> str:
    """The ``message`` text for a ``stat`` code in the requested language."""
    if english:
        return MESSAGES_EN.get(code, "UNKNOWN ERROR")
    if code == 100 and plain_success:
        return PLAIN_SUCCESS_ZH
    return MESSAGES_ZH.get(code, "未知错误")


def _txt_escape(value: str) -> str:
    return (
        value.replace("%", "%25")
        .replace("&", "%26")
        .replace("=", "%3D")
        .replace("\r", "%0D")
        .replace("\n", "%0A")
    )


def _xml_items(items: list[dict[str, Any]]) -> str:
    parts = []
    for index, item in enumerate(items):
        inner = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in item.items())
        parts.append(f"<value{index}>{inner}</value{index}>")
    return "".join(parts)


def render_text(payload: dict[str, Any], fmt: str) -> str:
    """Render reply data as the body text of ``fmt`` (json, xml or txt)."""
    if fmt == XML:
        parts = []
        for key, value in payload.items():
            body = _xml_items(value) if isinstance(value, list) else escape(str(value))
            parts.append(f"<{key}>{body}</{key}>")
        return "<result>" + "".join(parts) + "</result>"
    if fmt == TXT:
        pairs: list[str] = []
        for key, value in payload.items():
            if isinstance(value, list):
                for index, item in enumerate(value):
                    pairs.extend(f"value{index}.{k}={_txt_escape(str(v))}" for k, v in item.items())
            else:
                pairs.append(f"{key}={_txt_escape(str(value))}")
        return "sms&" + "&".join(pairs)
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def encode_body(text: str, charset: str) -> bytes:
    """Encode a body for the wire; characters the charset lacks become ``?`` rather than failing."""
    return text.encode(charset, errors="replace")
