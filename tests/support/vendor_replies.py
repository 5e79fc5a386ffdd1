"""Reply bodies of every action in every format, as docs/api.md and docs/api-decisions.md
show them (shared by the client tests)."""

from __future__ import annotations

SEND_OK = {
    "json": '{"stat":"100","message":"发送成功"}',
    "xml": '<?xml version="1.0" encoding="utf-8"?>\n'
    "<result><stat>100</stat><message>发送成功</message></result>",
    "txt": "sms&stat=100&message=发送成功",
}

BALANCE_OK = {
    "json": '{"stat":"100","message":"成功","number":"2123432"}',
    "xml": "<result>\n<stat>100</stat>\n<message>成功</message>\n<number>2123432</number>\n</result>",
    "txt": "sms&stat=100&remain=2123432",
}

REPORTS = [
    {
        "retime": "2010-11-14 18:04:19",
        "mobile": "13900008888",
        "mobileids": "1390000888800001",
        "resultcode": "100",
        "status": "DELIVRD",
    },
    {
        "retime": "2010-11-14 18:09:19",
        "mobile": "13900009999",
        "mobileids": "1390000999900002",
        "resultcode": "131",
        "status": "UNDELIV",
    },
]

STATUS_OK = {
    "json": '{"stat":"100","total":"2","values":['
    '{"retime":"2010-11-14 18:04:19","mobile":"13900008888","mobileids":"1390000888800001",'
    '"resultcode":"100","status":"DELIVRD"},'
    '{"retime":"2010-11-14 18:09:19","mobile":"13900009999","mobileids":"1390000999900002",'
    '"resultcode":"131","status":"UNDELIV"}]}',
    "xml": "<result>\n<stat>100</stat>\n<total>2</total>\n<values>\n"
    "<value0><retime>2010-11-14 18:04:19</retime><mobile>13900008888</mobile>"
    "<mobileids>1390000888800001</mobileids><resultcode>100</resultcode><status>DELIVRD</status></value0>\n"
    "<value1><retime>2010-11-14 18:09:19</retime><mobile>13900009999</mobile>"
    "<mobileids>1390000999900002</mobileids><resultcode>131</resultcode><status>UNDELIV</status></value1>\n"
    "</values>\n</result>",
    "txt": "sms&stat=100&total=2"
    "&value0.retime=2010-11-14 18:04:19&value0.mobile=13900008888&value0.mobileids=1390000888800001"
    "&value0.resultcode=100&value0.status=DELIVRD"
    "&value1.retime=2010-11-14 18:09:19&value1.mobile=13900009999&value1.mobileids=1390000999900002"
    "&value1.resultcode=131&value1.status=UNDELIV",
}

STATUS_EMPTY = {
    "json": '{"stat":"100","total":"0","values":[]}',
    "xml": "<result><stat>100</stat><total>0</total><values></values></result>",
    "txt": "sms&stat=100&total=0",
}

RECORDS = [
    {
        "sendtime": "2013-11-14 18:04:19",
        "mobile": "13900008888",
        "content": "您的验证码是：352333。a&b=c",
        "status": "1",
    },
    {
        "sendtime": "2013-11-14 18:05:19",
        "mobile": "13900009999",
        "content": "您的验证码是：4711。",
        "status": "0",
    },
]

QUERY_OK = {
    # ac=query: stat is a number in the document's json.
    "json": '{"stat":100,"total":"2","page_size":"2","total_page":"1","values":['
    '{"sendtime":"2013-11-14 18:04:19","mobile":"13900008888","content":"您的验证码是：352333。a&b=c",'
    '"status":"1"},'
    '{"sendtime":"2013-11-14 18:05:19","mobile":"13900009999","content":"您的验证码是：4711。",'
    '"status":"0"}]}',
    "xml": "<result>\n<stat>100</stat>\n<total>2</total><page_size>2</page_size><total_page>1</total_page>\n"
    "<values>\n<value0>\n<sendtime>2013-11-14 18:04:19</sendtime>\n<mobile>13900008888</mobile>\n"
    "<content>您的验证码是：352333。a&amp;b=c</content>\n<status>1</status>\n</value0>\n"
    "<value1><sendtime>2013-11-14 18:05:19</sendtime><mobile>13900009999</mobile>"
    "<content>您的验证码是：4711。</content><status>0</status></value1>\n</values>\n</result>",
    "txt": "sms&stat=100&total=2&page_size=2&total_page=1"
    "&value0.sendtime=2013-11-14 18:04:19&value0.mobile=13900008888"
    "&value0.content=您的验证码是：352333。a%26b%3Dc&value0.status=1"
    "&value1.sendtime=2013-11-14 18:05:19&value1.mobile=13900009999"
    "&value1.content=您的验证码是：4711。&value1.status=0",
}

QUERY_EMPTY = {
    "json": '{"total":"0","page_size":"0","total_page":"0"}',
    "xml": "<result>\n<total>0</total><page_size>0</page_size><total_page>0</total_page>\n</result>",
    "txt": "sms&total=0&page_size=0&total_page=0",
}


def error_body(reply_format: str, code: int, message: str = "验证失败", *, numeric: bool = False) -> str:
    """An error reply; ``numeric`` gives json's stat as a number instead of a string."""
    if reply_format == "json":
        stat = str(code) if numeric else f'"{code}"'
        return f'{{"stat":{stat},"message":"{message}"}}'
    if reply_format == "xml":
        return f"<result><stat>{code}</stat><message>{message}</message></result>"
    return f"sms&stat={code}&message={message}"


FORMATS = ("json", "xml", "txt")
