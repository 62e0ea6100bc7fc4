# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The generic threshold evaluation in module_utils/thresholds.py (used by pgbouncer_stats)."""

import pytest

from ansible_collections.ywmessaging.scaling.plugins.module_utils import thresholds as th


@pytest.mark.parametrize(
    "measured, limit, comparison, status",
    [
        (50, 50, "max", "passed"),
        (50.1, 50, "max", "failed"),
        (90, 90, "min", "passed"),
        (89.99, 90, "min", "failed"),
        (3, 3, "<", "failed"),
        (2, 3, "<", "passed"),
        (4, 3, ">", "passed"),
        (3, 3, ">", "failed"),
        (200, 200, "==", "passed"),
        (503, 200, "==", "failed"),
        ("ok", "fail", "!=", "passed"),
        (None, 90, "min", "skipped"),
        (0, None, "max", "skipped"),
        (0, 0, "max", "passed"),  # a zero measurement is a measurement
    ],
)
def test_evaluate_one(measured, limit, comparison, status):
    assert th.evaluate_one(("x", measured, limit, comparison))["status"] == status


def test_unknown_comparison_is_a_programming_error():
    with pytest.raises(ValueError):
        th.evaluate_one(("x", 1, 2, "about"))


def test_labels_and_dict_form_are_kept():
    tuple_form = th.evaluate_one(("max_latency_ms", 120, 100, "max", {"url": "http://127.0.0.1/health"}))
    dict_form = th.evaluate_one(
        {"name": "max_latency_ms", "measured": 120, "limit": 100, "labels": {"url": "http://127.0.0.1/health"}}
    )
    assert (
        tuple_form
        == dict_form
        == {
            "name": "max_latency_ms",
            "url": "http://127.0.0.1/health",
            "measured": 120,
            "limit": 100,
            "comparison": "<=",
            "status": "failed",
        }
    )


def test_find_violations_keeps_order_and_only_failures():
    checks = [
        ("a", 1, 0, "max"),
        ("b", 1, 5, "max"),
        ("c", None, 5, "max"),
        ("d", 1, 5, "min"),
    ]
    assert [v["name"] for v in th.find_violations(checks)] == ["a", "d"]


def test_failure_message_lists_every_violation():
    results = th.evaluate(
        [
            ("min_reuse_ratio", 42.5, 90, "min", {"database": "app"}),
            ("max_clients_waiting", 0, 0, "max", {"database": "app"}),
            ("max_pool_utilization", 100.0, 90, "max", {"user": "u", "database": "app"}),
        ]
    )
    results.append(th.failed_result("database_known", "no such database", database="nope"))
    assert th.failure_message(results, what="check") == (
        "3 checks violated: "
        "min_reuse_ratio (database=app): measured 42.5, limit >= 90; "
        "max_pool_utilization (database=app, user=u): measured 100.0, limit <= 90; "
        "database_known (database=nope): no such database"
    )


def test_no_violation_no_message():
    assert th.failure_message(th.evaluate([("a", 1, 2, "max")])) == ""
    assert th.failure_message([]) == ""


def test_singular_noun_for_one_violation():
    assert th.failure_message(th.evaluate([("a", 3, 2, "max")])).startswith("1 threshold violated: a: measured 3")
