# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Distribution through a load balancer: send requests, count which upstream served each one
(from a response header like nginx's ``$upstream_addr``), and judge the counts against fair
shares, excluded upstreams and failures."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.ywmessaging.scaling.plugins.module_utils.http_target import (
    ProbeError,
    http_request,
    status_problem,
)

_UPSTREAM_SEPARATOR = re.compile(r"\s*,\s*|\s+:\s+")
DEFAULT_TOLERANCE = 0.5


def serving_upstream(value):
    """The upstream that served a request, from an nginx ``$upstream_addr``-style value.

    ``10.0.0.1:3000, 10.0.0.2:3000`` means the first failed and the second answered;
    `` : `` separates internal redirects. Returns (server, tried_before) or (None, []).
    """
    hops = [h for h in _UPSTREAM_SEPARATOR.split((value or "").strip()) if h and h != "-"]
    return (hops[-1], hops[:-1]) if hops else (None, [])


def _add(counter, key, n=1):
    counter[key] = counter.get(key, 0) + n


def collect_distribution(target, count, concurrency, header, request=http_request):
    """Send ``count`` requests with ``concurrency`` workers and tally who served them."""

    def one(_index):
        try:
            response = request(target)
        except ProbeError as exc:
            return {"error": exc.message}
        if response.status not in target.status_codes:
            return {"error": status_problem(response.status, target.status_codes)}
        server, tried = serving_upstream(response.header(header))
        return {"upstream": server, "tried": tried}

    tally = {"requests": count, "counts": {}, "failures": {}, "missing_header": 0, "tried": {}}
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, count))) as pool:
        for outcome in pool.map(one, range(count)):
            if "error" in outcome:
                _add(tally["failures"], outcome["error"])
            elif outcome["upstream"] is None:
                tally["missing_header"] += 1
            else:
                _add(tally["counts"], outcome["upstream"])
                for hop in outcome["tried"]:
                    _add(tally["tried"], hop)
    return tally


def fair_shares(served, expected, weights=None):
    """Requests each expected upstream would serve out of ``served`` if the balancer were exactly
    fair: equal shares, or shares by weight (an upstream missing from ``weights`` weighs 1)."""
    weights = dict((u, (weights or {}).get(u, 1)) for u in expected)
    total = sum(weights.values())
    return dict((u, served * w / total) for u, w in weights.items()) if total else {}


def minimums(served, expected, tolerance=None, min_share=None, weights=None):
    """Minimum requests each expected upstream must serve out of ``served``: ``min_share`` percent
    of them when given, else its fair share reduced by ``tolerance`` (0.5 when not given)."""
    if min_share is not None:
        return dict((u, served * min_share / 100.0) for u in expected)
    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
    return dict((u, (1.0 - tolerance) * fair) for u, fair in fair_shares(served, expected, weights).items())


def _pct(part, whole):
    return round(100.0 * part / whole, 1) if whole else 0.0


def evaluate_distribution(tally, header, expected=(), excluded=(), **rules):
    """Judge a tally from collect_distribution. Returns (violations, summary dict).

    ``rules``: tolerance, min_share, weights (see minimums), max_failures (default 0),
    allow_unexpected (default False).
    """
    counts, expected, excluded = tally["counts"], list(expected), list(excluded)
    served, failed = sum(counts.values()), sum(tally["failures"].values())
    min_share, weights = rules.get("min_share"), rules.get("weights")
    tolerance = DEFAULT_TOLERANCE if rules.get("tolerance") is None else rules["tolerance"]
    required = minimums(served, expected, tolerance, min_share, weights)
    fair = fair_shares(served, expected, weights)
    violations = []
    if failed > rules.get("max_failures", 0):
        by_count = sorted(tally["failures"].items(), key=lambda kv: -kv[1])
        reasons = ", ".join("%s x%d" % (reason, n) for reason, n in by_count)
        violations.append("%d of %d requests failed (%s)" % (failed, tally["requests"], reasons))
    if tally["missing_header"]:
        violations.append(
            "%d of %d responses had no %s header, so their upstream is unknown"
            % (tally["missing_header"], tally["requests"], header)
        )
    for upstream in excluded:
        if counts.get(upstream):
            violations.append(
                "excluded upstream %s served %d of %d requests (%s%%)"
                % (upstream, counts[upstream], served, _pct(counts[upstream], served))
            )
    for upstream in expected:
        got = counts.get(upstream, 0)
        if served and got < required[upstream] - 1e-9:
            if min_share is not None:
                rule = "min_share %g%%" % min_share
            else:
                rule = "fair share %g with tolerance %g" % (round(fair[upstream], 2), tolerance)
            violations.append(
                "upstream %s served %d of %d requests (%s%%), below the minimum of %g (%s)"
                % (upstream, got, served, _pct(got, served), round(required[upstream], 2), rule)
            )
    unexpected = sorted(u for u in counts if u not in expected and u not in excluded)
    if expected and unexpected and not rules.get("allow_unexpected"):
        violations.append(
            "upstream(s) not listed in expected served requests: %s"
            % ", ".join("%s (%d)" % (u, counts[u]) for u in unexpected)
        )
    summary = {
        "requests": tally["requests"],
        "succeeded": served + tally["missing_header"],
        "failed": failed,
        "failures": dict(tally["failures"]),
        "missing_header": tally["missing_header"],
        "counts": dict(counts),
        "shares": dict((u, _pct(n, served)) for u, n in counts.items()),
        "required_per_upstream": round(min(required.values()), 2) if required else 0.0,
        "required": dict((u, round(n, 2)) for u, n in required.items()),
        "unexpected": unexpected,
        "tried_before_serving": dict(tally.get("tried", {})),
        "violations": violations,
        "ok": not violations,
    }
    return violations, summary
