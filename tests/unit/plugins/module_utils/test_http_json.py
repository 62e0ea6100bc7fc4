# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dotted paths into JSON bodies and the type-strict comparison (module_utils/http_json.py)."""

import pytest

from ansible_collections.ywmessaging.scaling.plugins.module_utils import http_json

BODY = {
    "status": "ok",
    "checks": {"database": "ok", "redis": {"latency": 3}},
    "items": [{"state": "up"}, {"state": "down"}],
    "db.primary": "ok",
    "ready": True,
    "count": 0,
}


@pytest.mark.parametrize(
    "path, found, value",
    [
        ("status", True, "ok"),
        ("checks.database", True, "ok"),
        ("checks.redis.latency", True, 3),
        ("items.0.state", True, "up"),
        ("items.-1.state", True, "down"),
        ("items.2.state", False, None),
        ("db\\.primary", True, "ok"),
        ("db.primary", False, None),
        ("checks.missing", False, None),
        ("status.deeper", False, None),
        ("items.x", False, None),
        ("count", True, 0),
    ],
)
def test_lookup_follows_dotted_paths(path, found, value):
    assert http_json.lookup(BODY, path) == (found, value)


@pytest.mark.parametrize(
    "path, parts",
    [("a", ["a"]), ("a.b.c", ["a", "b", "c"]), ("a\\.b.c", ["a.b", "c"]), ("a\\b", ["a\\b"]), ("a..b", ["a", "", "b"])],
)
def test_split_path_keeps_escaped_dots_and_other_backslashes(path, parts):
    assert http_json.split_path(path) == parts


@pytest.mark.parametrize(
    "path, bad",
    [("status", False), ("a.b.c", False), ("a\\.b", False), ("", True), ("a..b", True), (".a", True), ("a.", True)],
)
def test_path_error_rejects_empty_keys(path, bad):
    assert (http_json.path_error(path) is not None) is bad


@pytest.mark.parametrize(
    "expected, actual, match",
    [
        ("ok", "ok", True),
        ("ok", "degraded", False),
        (True, True, True),
        (True, 1, False),
        (1, True, False),
        (0, False, False),
        ("true", True, True),
        ("1", 1, True),
        ("null", None, True),
        ("ok", None, False),
        ("ok", {"status": "ok"}, False),
        (1, 1.0, True),
        (2, "2", False),
        ({"a": 1}, {"a": 1}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ([1, 2], [1, 2], True),
        ([1], [1, 2], False),
        ([True], [1], False),
        (None, None, True),
    ],
)
def test_values_match_is_type_strict_but_accepts_string_spelling(expected, actual, match):
    assert http_json.values_match(expected, actual) is match
