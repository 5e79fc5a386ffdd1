from __future__ import annotations

import hashlib
import json

import pytest

from airflow_provider_smscn.client.errors import SmsCnValidationError
from airflow_provider_smscn.client.validation import (
    deterministic_mobileid,
    generate_mobileids,
    normalize_mobileids,
    normalize_mobiles,
    normalize_variables,
    validate_template_id,
)


class TestNormalizeMobiles:
    def test_comma_string_and_list(self) -> None:
        assert normalize_mobiles(" 13900008888, 02112345678 ", 10) == ["13900008888", "02112345678"]
        assert normalize_mobiles(["13900008888", " 13900009999 "], 10) == ["13900008888", "13900009999"]
        assert normalize_mobiles(("13900008888",), 1) == ["13900008888"]

    @pytest.mark.parametrize("landline", ["0101234567", "02112345678", "075512345678"])
    def test_landlines_with_area_code(self, landline: str) -> None:
        assert normalize_mobiles(landline, 1) == [landline]

    @pytest.mark.parametrize("value", ["", [], " "])
    def test_nothing_given(self, value: object) -> None:
        with pytest.raises(SmsCnValidationError, match=r"no phone number|#1 is empty"):
            normalize_mobiles(value, 10)  # type: ignore[arg-type]

    def test_empty_item_named_by_position(self) -> None:
        with pytest.raises(SmsCnValidationError, match="number #2 is empty"):
            normalize_mobiles("13900008888,,13900009999", 10)

    @pytest.mark.parametrize(
        ("number", "problem"),
        [
            ("1390000888", "has 10 digits"),
            ("139000088881", "has 12 digits"),
            ("+8613900008888", "other than digits"),
            ("139-0000-8888", "other than digits"),
            ("23900008888", "must start with 1"),
            ("012345678", "has 9 digits"),
            ("0123456789012", "has 13 digits"),
            ("1390000888８", "other than digits"),  # a full-width digit
        ],
    )
    def test_malformed_number_masked_in_message(self, number: str, problem: str) -> None:
        with pytest.raises(SmsCnValidationError, match=problem) as info:
            normalize_mobiles(["13900009999", number], 10)
        message = str(info.value)
        assert "number #2" in message
        assert number not in message

    def test_duplicate_refused(self) -> None:
        with pytest.raises(SmsCnValidationError, match=r"#3 \(139\*\*\*\*8888\) repeats number #1") as info:
            normalize_mobiles("13900008888,13900009999, 13900008888", 10)
        assert "13900008888" not in str(info.value)

    def test_limit(self) -> None:
        numbers = [f"139{i:08d}" for i in range(4)]
        assert len(normalize_mobiles(numbers, 4)) == 4
        with pytest.raises(SmsCnValidationError, match="4 numbers given, at most 3"):
            normalize_mobiles(numbers, 3)

    @pytest.mark.parametrize("value", [[13900008888], b"13900008888", {"13900008888": 1}, 13900008888])
    def test_wrong_types(self, value: object) -> None:
        with pytest.raises(SmsCnValidationError):
            normalize_mobiles(value, 10)  # type: ignore[arg-type]


class TestNormalizeVariables:
    def test_mapping_and_json(self) -> None:
        variables = {"code": "352333", "n": 5, "x": 1.5}
        assert normalize_variables(variables) == variables
        assert normalize_variables('{"code": "352333"}') == {"code": "352333"}

    @pytest.mark.parametrize(
        ("value", "match"),
        [
            ('{"code": "352333"', "not valid JSON"),
            ('["352333"]', "not list"),
            ("[]", "not list"),
            ({}, "no template variables"),
            ({"": "352333"}, "not a template slot"),
            ({"co de": "352333"}, "not a template slot"),
            ({"{$code}": "352333"}, "not a template slot"),
            ({1: "352333"}, "not a template slot"),
            ({"code": True}, "is a bool"),
            ({"code": None}, "is a NoneType"),
            ({"code": {"a": "352333"}}, "is a dict"),
            ({"code": ["352333"]}, "is a list"),
            ({"code": float("inf")}, "not a finite"),
        ],
    )
    def test_refused_without_showing_values(self, value: object, match: str) -> None:
        with pytest.raises(SmsCnValidationError, match=match) as info:
            normalize_variables(value)  # type: ignore[arg-type]
        assert "352333" not in str(info.value)

    def test_json_with_the_documents_full_width_colon_refused(self) -> None:
        with pytest.raises(SmsCnValidationError, match="not valid JSON") as info:
            normalize_variables('{"code"："234336"}')
        assert "234336" not in str(info.value)


class TestTemplateId:
    @pytest.mark.parametrize(("value", "expected"), [("700001", "700001"), (700001, "700001"), (" 7 ", "7")])
    def test_valid(self, value: object, expected: str) -> None:
        assert validate_template_id(value) == expected

    @pytest.mark.parametrize("value", ["", "70000a", "-1", -1, None, True, 7.0, "７"])
    def test_invalid(self, value: object) -> None:
        with pytest.raises(SmsCnValidationError, match="template_id"):
            validate_template_id(value)


class TestMobileids:
    def test_none_passes_through(self) -> None:
        assert normalize_mobileids(None, 3) is None

    def test_string_and_list(self) -> None:
        assert normalize_mobileids("1, 2", 2) == ["1", "2"]
        assert normalize_mobileids(["1" * 30, "2"], 2) == ["1" * 30, "2"]

    @pytest.mark.parametrize(
        ("ids", "count", "match"),
        [
            ("1,2", 3, "2 mobileids given for 3 numbers"),
            (["1", "x"], 2, "#2 must be 1 to 30 digits"),
            (["1", ""], 2, "#2 must be 1 to 30 digits"),
            (["1" * 31], 1, "#1 must be 1 to 30 digits"),
            (["7", "7"], 2, "#2 repeats"),
            ([None], 1, "#1 must be a string"),
        ],
    )
    def test_invalid(self, ids: object, count: int, match: str) -> None:
        with pytest.raises(SmsCnValidationError, match=match):
            normalize_mobileids(ids, count)  # type: ignore[arg-type]

    def test_generated_ids(self) -> None:
        ids = generate_mobileids(500)
        assert len(set(ids)) == 500
        assert all(len(i) == 20 and i.isdigit() and i[0] != "0" for i in ids)
        assert normalize_mobileids(ids, 500) == ids
        assert generate_mobileids(0) == []

    def test_generated_ids_are_random(self) -> None:
        assert generate_mobileids(1) != generate_mobileids(1)

    def test_deterministic_id(self) -> None:
        key = "dag/task/run/0/13900008888"
        first = deterministic_mobileid(key)
        assert first == deterministic_mobileid(key)
        assert first != deterministic_mobileid(key + "x")
        assert len(first) == 20 and first.isdigit() and first[0] != "0"
        assert "13900008888" not in first
        digest = int(hashlib.sha256(key.encode()).hexdigest(), 16)
        assert int(first) == 10**19 + digest % (9 * 10**19)

    def test_deterministic_ids_never_start_with_zero(self) -> None:
        assert all(deterministic_mobileid(str(i))[0] != "0" for i in range(2000))

    def test_deterministic_id_needs_a_key(self) -> None:
        with pytest.raises(SmsCnValidationError):
            deterministic_mobileid("")


def test_variables_round_trip_as_json() -> None:
    variables = normalize_variables({"code": "352333", "name": "张三"})
    assert json.loads(json.dumps(variables, ensure_ascii=False)) == variables
