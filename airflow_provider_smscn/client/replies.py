"""Reply bodies of the sms.cn API (json, xml, txt) turned into one plain shape.

``parse_reply`` gives every format the same dict, so the client reads each action once:
``stat`` an int (None when absent: the empty ``ac=query`` reply), other scalars strings,
``values`` a list of dicts in the vendor's order. Anything else raises
:class:`SmsCnResponseError` carrying a short, redacted excerpt of the body.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any
from urllib.parse import unquote

from .errors import SmsCnResponseError, SmsCnValidationError
from .redact import mask_mobile

REPLY_FORMATS = ("json", "xml", "txt")
EXCERPT_LIMIT = 200

_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
# GB18030 is a superset of GBK and GB2312: decoding with it never fails where they would pass.
_GB_ALIASES = {"gbk", "gb2312", "gb18030", "cp936", "euc_cn", "hz"}
_UINT = re.compile(r"\s*([0-9]{1,18})\s*")
_TXT_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TXT_ITEM_KEY = re.compile(r"value([0-9]{1,6})\.([A-Za-z_][A-Za-z0-9_]*)")
_XML_ITEM_TAG = re.compile(r"value([0-9]{1,6})")
_WS = re.compile(r"\s+")
_SECRETISH = re.compile(
    r"""(pwd|tokenkey|password|passwd|api_password|secret\w*|token)("?\s*[=:>]\s*"?)[^&\s"'<>,;]*""",
    re.IGNORECASE,
)
_HEX32 = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32}(?![0-9A-Fa-f])")
# The ``content`` of ac=query records is the spoken text, one-time code included: json, xml, txt.
# Also a request form quoted back by a proxy (``content={"code":"…"}``, percent-encoded or not).
_CONTENT = re.compile(
    r"""(?<![A-Za-z0-9_])(content=)[^&]*"""
    r"""|("content"\s*:\s*)(?:"(?:\\.|[^"\\])*"?|\{[^}]*\}?|[^,}\]]*)"""
    r"""|(<content>)(?:<!\[CDATA\[(?:(?!\]\]>).)*(?:\]\]>)?|[^<])*""",
    re.IGNORECASE | re.DOTALL,
)
_LONG_DIGITS = re.compile(r"\d{7,}")


def charset_from_content_type(content_type: str | None) -> str | None:
    """The ``charset`` of a Content-Type header, or None.

    Not ``requests``' ``Response.encoding``: that one claims ISO-8859-1 for any ``text/*``
    without a charset, which would hide the UTF-8 / GBK fallback below.
    """
    if not content_type:
        return None
    match = _CHARSET.search(content_type)
    return match.group(1) if match else None


def parse_uint(value: object) -> int | None:
    """A non-negative int from an int or a string of ASCII digits (spaces around allowed), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    match = _UINT.fullmatch(value) if isinstance(value, str) else None
    return int(match.group(1)) if match else None


def _codec(name: str) -> str | None:
    try:
        codec = codecs.lookup(name).name
    except (LookupError, ValueError):  # unknown, or not a name at all (a NUL inside)
        return None
    return "gb18030" if codec in _GB_ALIASES else codec


def decode_body(body: bytes, declared_charset: str | None) -> str:
    """Decode a reply: by the declared charset, else UTF-8, else GBK; never raises.

    Public clients show the vendor's replies in either encoding (decisions #3). A body that is
    neither is decoded as UTF-8 with replacement characters, so the parser can report it.
    """
    candidates = ["utf-8", "gb18030"]
    declared = _codec(declared_charset) if declared_charset else None
    if declared:
        candidates.insert(0, declared)
    for codec in candidates:
        try:
            text = body.decode(codec)
        except (UnicodeError, LookupError):  # LookupError: a declared bytes codec (base64, zlib, rot13)
            continue
        return text[1:] if text.startswith("\ufeff") else text
    return body.decode("utf-8", errors="replace")


def safe_excerpt(text: str, limit: int = EXCERPT_LIMIT) -> str:
    """At most ``limit`` characters of ``text`` for an error message.

    Whitespace is collapsed, anything shaped like a credential (``pwd=…``, ``"tokenkey": …``,
    32 hex digits) or a record's ``content`` (it speaks a one-time code) is replaced and long digit
    runs (phone numbers) are masked.
    """
    text = _WS.sub(" ", text).strip()
    text = _CONTENT.sub(lambda m: f"{m.group(1) or m.group(2) or m.group(3)}***", text)
    text = _SECRETISH.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    text = _HEX32.sub("<32 hex>", text)
    text = _LONG_DIGITS.sub(lambda m: mask_mobile(m.group(0)), text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unreadable(reason: str, text: str, reply_format: str, action: str | None) -> SmsCnResponseError:
    excerpt = safe_excerpt(text)
    where = f" to ac={action}" if action else ""
    return SmsCnResponseError(
        f"unreadable {reply_format} reply{where}: {reason}; body starts: {excerpt!r}",
        action=action, body_excerpt=excerpt,
    )


def _scalar(value: Any) -> str | None:
    """A json scalar as the string the xml and txt formats would carry; None for nested data."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def _flat(item: dict[Any, Any]) -> dict[str, str]:
    flat = {}
    for key, value in item.items():
        text = _scalar(value)
        if text is not None:
            flat[str(key)] = text
    return flat


def _json_values(values: Any) -> list[dict[str, str]] | None:
    """The ``values`` list; a PHP-style object keyed "0", "1", … is taken in numeric order."""
    if values in (None, "", [], {}):
        return []
    if isinstance(values, dict):
        order = {key: parse_uint(key) for key in values}
        if None in order.values():
            return None
        values = [values[key] for key in sorted(values, key=lambda key: order[key] or 0)]
    if not isinstance(values, list) or not all(isinstance(item, dict) for item in values):
        return None
    return [_flat(item) for item in values]


def _parse_json(text: str) -> tuple[dict[str, Any], str | None]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return {}, "not valid JSON"
    if not isinstance(data, dict):
        return {}, f"a JSON {type(data).__name__}, not an object"
    reply: dict[str, Any] = {}
    for key, value in data.items():
        if key == "values":
            values = _json_values(value)
            if values is None:
                return {}, "'values' is not a list of objects"
            reply["values"] = values
        elif key == "stat":
            reply["stat"] = value
        else:
            scalar = _scalar(value)
            if scalar is not None:
                reply[key] = scalar
    return reply, None


def _xml_values(element: Any) -> list[dict[str, str]]:
    children = list(element)
    numbered: list[tuple[int, Any]] = []
    for child in children:
        match = _XML_ITEM_TAG.fullmatch(child.tag) if isinstance(child.tag, str) else None
        if match is None:
            break
        numbered.append((int(match.group(1)), child))
    else:  # all value0, value1, …, value10: numeric order, not document or string order
        children = [child for _, child in sorted(numbered, key=lambda pair: pair[0])]
    return [{str(field.tag): (field.text or "").strip() for field in child} for child in children]


def _parse_xml(text: str) -> tuple[dict[str, Any], str | None]:
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        root = fromstring(text.strip(), forbid_dtd=True)
    except DefusedXmlException as exc:
        return {}, f"XML refused ({type(exc).__name__}: DTDs and entities are not accepted)"
    except (ParseError, ValueError, RecursionError):
        return {}, "not well-formed XML"
    if root.tag != "result":
        return {}, f"root element <{str(root.tag)[:20]}>, expected <result>"
    reply: dict[str, Any] = {}
    for child in root:
        if child.tag == "values":
            reply["values"] = _xml_values(child)
        elif len(child) == 0:
            reply[str(child.tag)] = (child.text or "").strip()
    return reply, None


def _parse_txt(text: str) -> tuple[dict[str, Any], str | None]:
    parts = text.strip().split("&")
    if "=" not in parts[0]:
        # The documented ``sms&`` prefix; public clients drop whatever stands before the first ``&``,
        # but anything other than ``sms`` there is an HTML page or a proxy's message, not a reply.
        if parts[0].strip().lower() != "sms":
            return {}, "no 'sms&' prefix"
        parts = parts[1:]
    reply: dict[str, Any] = {}
    items: dict[int, dict[str, str]] = {}
    for part in parts:
        if not part:
            continue
        key, sep, raw = part.partition("=")
        value = unquote(raw, errors="replace")
        item = _TXT_ITEM_KEY.fullmatch(key)
        if item:
            items.setdefault(int(item.group(1)), {})[item.group(2)] = value
        elif sep and _TXT_KEY.fullmatch(key):
            reply[key] = value
        else:
            return {}, "not a list of key=value pairs"
    if not reply and not items:
        return {}, "no key=value pairs"
    if items:
        reply["values"] = [items[index] for index in sorted(items)]
    return reply, None


_PARSERS = {"json": _parse_json, "xml": _parse_xml, "txt": _parse_txt}


def parse_reply(text: str, reply_format: str, *, action: str | None = None) -> dict[str, Any]:
    """Normalise a decoded reply body of ``reply_format`` (json, xml or txt) into a plain dict.

    ``action`` only names the request in error messages.
    """
    parser = _PARSERS.get(reply_format)
    if parser is None:
        raise SmsCnValidationError(f"unknown reply format {reply_format!r}; expected one of {REPLY_FORMATS}")
    if not text.strip():
        raise _unreadable("empty body", text, reply_format, action)
    reply, problem = parser(text)
    if problem is None:
        raw_stat = reply.pop("stat", None)
        stat = parse_uint(raw_stat)
        if raw_stat is not None and stat is None:
            problem = "'stat' is not a number"
        reply["stat"] = stat
    if problem is not None:
        raise _unreadable(problem, text, reply_format, action)
    return reply
