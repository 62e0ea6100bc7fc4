# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Distribution through a balancer: who served, fair shares, violations (module_utils/http_distribution.py)."""

import pytest

from ansible_collections.ywmessaging.scaling.plugins.module_utils import http_distribution as hd
from ansible_collections.ywmessaging.scaling.plugins.module_utils.http_target import ProbeError, Response, Target


@pytest.mark.parametrize(
    "value, server, tried",
    [
        ("10.0.0.1:3000", "10.0.0.1:3000", []),
        ("10.0.0.1:3000, 10.0.0.2:3000", "10.0.0.2:3000", ["10.0.0.1:3000"]),
        ("10.0.0.1:3000, 10.0.0.2:3000 : 10.0.0.9:80", "10.0.0.9:80", ["10.0.0.1:3000", "10.0.0.2:3000"]),
        ("[::1]:3000", "[::1]:3000", []),
        (" 10.0.0.1:3000 ", "10.0.0.1:3000", []),
        ("", None, []),
        ("-", None, []),
        (None, None, []),
    ],
)
def test_serving_upstream_takes_the_last_hop(value, server, tried):
    assert hd.serving_upstream(value) == (server, tried)


@pytest.mark.parametrize(
    "served, n_expected, tolerance, min_share, required",
    [
        (30, 3, None, None, 5.0),
        (30, 3, 0.5, None, 5.0),
        (30, 3, 0.2, None, 8.0),
        (30, 3, 0.0, None, 10.0),
        (60, 2, 0.1, None, 27.0),
        (40, 4, None, 20, 8.0),
        (40, 4, 0.9, 20, 8.0),
    ],
)
def test_minimums_without_weights(served, n_expected, tolerance, min_share, required):
    expected = ["u%d:1" % i for i in range(n_expected)]
    minimums = hd.minimums(served, expected, tolerance, min_share)
    assert sorted(minimums) == expected
    assert all(value == pytest.approx(required) for value in minimums.values())


def test_minimums_with_no_expected_upstream():
    assert hd.minimums(10, []) == {} and hd.fair_shares(10, []) == {}


@pytest.mark.parametrize(
    "served, weights, fair",
    [
        (100, None, {"a": 25, "b": 25, "c": 25, "d": 25}),
        (100, {"a": 2, "b": 1, "c": 1, "d": 1}, {"a": 40, "b": 20, "c": 20, "d": 20}),
        # an expected upstream missing from weights weighs 1
        (50, {"a": 3}, {"a": 25, "b": 8.333, "c": 8.333, "d": 8.333}),
    ],
)
def test_fair_shares_by_weight(served, weights, fair):
    assert hd.fair_shares(served, ["a", "b", "c", "d"], weights) == pytest.approx(fair, abs=1e-3)


def test_four_equal_backends_pass_at_24_percent_without_min_share_but_not_with_25():
    """The reason fair shares exist: a fixed 25% minimum fails a balancer that is fair within noise."""
    t = tally({"a:1": 24, "b:1": 26, "c:1": 25, "d:1": 25})
    four = ["a:1", "b:1", "c:1", "d:1"]
    assert hd.evaluate_distribution(t, "X", four, tolerance=0.2)[1]["ok"] is True
    assert hd.evaluate_distribution(t, "X", four)[1]["ok"] is True
    assert hd.evaluate_distribution(t, "X", four, min_share=25)[0] == [
        "upstream a:1 served 24 of 100 requests (24.0%), below the minimum of 25 (min_share 25%)"
    ]
    # 19 is below 25% less a 0.2 tolerance (20)
    low = tally({"a:1": 19, "b:1": 27, "c:1": 27, "d:1": 27})
    assert hd.evaluate_distribution(low, "X", four, tolerance=0.2)[0] == [
        "upstream a:1 served 19 of 100 requests (19.0%), below the minimum of 20 (fair share 25 with tolerance 0.2)"
    ]


def test_weights_set_each_upstreams_fair_share():
    t = tally({"a:1": 30, "b:1": 35, "c:1": 35})
    violations, summary = hd.evaluate_distribution(t, "X", ["a:1", "b:1", "c:1"], tolerance=0.2, weights={"a:1": 2})
    # a's fair share is 2/4 of 100 = 50, so at least 40; b and c 25, so at least 20
    assert violations == [
        "upstream a:1 served 30 of 100 requests (30.0%), below the minimum of 40 (fair share 50 with tolerance 0.2)"
    ]
    assert summary["required"] == {"a:1": 40.0, "b:1": 20.0, "c:1": 20.0}
    assert summary["required_per_upstream"] == 20.0


def tally(counts, failures=None, missing=0, requests=None):
    total = sum(counts.values()) + sum((failures or {}).values()) + missing
    return {
        "requests": requests or total,
        "counts": counts,
        "failures": failures or {},
        "missing_header": missing,
        "tried": {},
    }


EXP = ["a:1", "b:1", "c:1"]


@pytest.mark.parametrize(
    "t, kwargs, fragments",
    [
        (tally({"a:1": 10, "b:1": 10, "c:1": 10}), {}, []),
        # 5 is exactly (1 - 0.5) * 30 / 3: still fair
        (tally({"a:1": 5, "b:1": 12, "c:1": 13}), {}, []),
        (
            tally({"a:1": 4, "b:1": 13, "c:1": 13}),
            {},
            ["upstream a:1 served 4 of 30 requests (13.3%), below the minimum of 5 (fair share 10 with tolerance 0.5)"],
        ),
        (tally({"a:1": 8, "b:1": 11, "c:1": 11}), {"tolerance": 0.1}, ["upstream a:1 served 8 of 30"]),
        (
            tally({"a:1": 6, "b:1": 12, "c:1": 12}),
            {"min_share": 25},
            ["upstream a:1 served 6 of 30 requests (20.0%), below the minimum of 7.5 (min_share 25%)"],
        ),
        (tally({"b:1": 15, "c:1": 15}), {}, ["upstream a:1 served 0 of 30"]),
        (
            tally({"a:1": 10, "b:1": 10, "c:1": 6, "d:1": 4}),
            {"excluded": ["d:1"]},
            ["excluded upstream d:1 served 4 of 30 requests (13.3%)"],
        ),
        (tally({"a:1": 10, "b:1": 10, "c:1": 8, "x:1": 2}), {}, ["not listed in expected served requests: x:1 (2)"]),
        (tally({"a:1": 10, "b:1": 10, "c:1": 8, "x:1": 2}), {"allow_unexpected": True}, []),
        (tally({"a:1": 9, "b:1": 9, "c:1": 9}, missing=3), {}, ["3 of 30 responses had no X-Upstream-Addr header"]),
        (
            tally(
                {"a:1": 9, "b:1": 9, "c:1": 9}, failures={"connection refused": 2, "HTTP status 502, expected 200": 1}
            ),
            {},
            ["3 of 30 requests failed (connection refused x2, HTTP status 502, expected 200 x1)"],
        ),
        (tally({"a:1": 9, "b:1": 9, "c:1": 9}, failures={"connection refused": 3}), {"max_failures": 3}, []),
    ],
)
def test_evaluate_distribution(t, kwargs, fragments):
    kwargs.setdefault("expected", EXP)
    violations, summary = hd.evaluate_distribution(t, "X-Upstream-Addr", **kwargs)
    assert len(violations) == len(fragments), violations
    for fragment, violation in zip(fragments, violations):
        assert fragment in violation
    assert summary["ok"] is (not fragments)
    assert summary["counts"] == t["counts"]


def test_distribution_summary_shares_and_counts():
    summary = hd.evaluate_distribution(
        tally({"a:1": 20, "b:1": 10}, failures={"connection refused": 1}, missing=2), "X-Up", expected=["a:1", "b:1"]
    )[1]
    assert summary["shares"] == {"a:1": 66.7, "b:1": 33.3}
    assert (summary["requests"], summary["succeeded"], summary["failed"], summary["missing_header"]) == (33, 32, 1, 2)
    assert summary["required_per_upstream"] == 7.5
    assert summary["required"] == {"a:1": 7.5, "b:1": 7.5}


def test_collect_distribution_tallies_servers_failures_and_missing_headers():
    ep = Target("distribution", "http", "lb.example", 80, "/health")
    answers = iter(
        [
            Response(200, {"x-upstream-addr": "a:1"}, b"", 1.0),
            Response(200, {"x-upstream-addr": "c:1, b:1"}, b"", 1.0),
            Response(200, {}, b"", 1.0),
            Response(502, {"x-upstream-addr": "a:1"}, b"", 1.0),
            ProbeError("connection refused"),
            Response(200, {"x-upstream-addr": "a:1"}, b"", 1.0),
        ]
    )

    def request(_ep):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    t = hd.collect_distribution(ep, 6, 1, "X-Upstream-Addr", request=request)
    assert t["counts"] == {"a:1": 2, "b:1": 1}
    assert t["failures"] == {"HTTP status 502, expected 200": 1, "connection refused": 1}
    assert t["missing_header"] == 1
    assert t["tried"] == {"c:1": 1}
