# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Generic threshold evaluation shared by the check modules.

A check is ``(name, measured, limit, comparison)`` with an optional fifth item, a dict of
labels that say what was measured (``{'database': 'app'}``, ``{'url': ...}``). Labels are
copied into the result so that a failure message can say *where* a limit was crossed.

``comparison`` is one of ``max`` (measured must be <= limit), ``min`` (>=), or an explicit
operator: ``<=``, ``<``, ``>=``, ``>``, ``==``, ``!=``.

A check whose measured value is ``None`` is *skipped* (nothing was there to measure, e.g. a
ratio over zero transactions): it is neither passed nor a violation. A caller that wants a
missing measurement to fail adds its own failed result (see ``failed_result``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import operator

PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"

# comparison -> (symbol shown to the user, function(measured, limit) -> bool)
COMPARISONS = {
    "max": ("<=", operator.le),
    "min": (">=", operator.ge),
    "<=": ("<=", operator.le),
    "<": ("<", operator.lt),
    ">=": (">=", operator.ge),
    ">": (">", operator.gt),
    "==": ("==", operator.eq),
    "!=": ("!=", operator.ne),
}


def _unpack(check):
    if isinstance(check, dict):
        return (
            check["name"],
            check.get("measured"),
            check.get("limit"),
            check.get("comparison", "max"),
            check.get("labels") or {},
        )
    if len(check) == 4:
        name, measured, limit, comparison = check
        return name, measured, limit, comparison, {}
    name, measured, limit, comparison, labels = check
    return name, measured, limit, comparison, labels or {}


def evaluate_one(check):
    """Evaluate one check and return its result dict.

    The result holds ``name``, the labels, ``measured``, ``limit``, ``comparison`` (as a symbol)
    and ``status`` (``passed``, ``failed`` or ``skipped``).
    """
    name, measured, limit, comparison, labels = _unpack(check)
    if comparison not in COMPARISONS:
        raise ValueError("unknown comparison %r for check %s" % (comparison, name))
    symbol, func = COMPARISONS[comparison]
    result = {"name": name}
    result.update(labels)
    result.update({"measured": measured, "limit": limit, "comparison": symbol})
    if measured is None or limit is None:
        result["status"] = SKIPPED
    else:
        result["status"] = PASSED if func(measured, limit) else FAILED
    return result


def evaluate(checks):
    """Evaluate every check, in order; return the list of result dicts."""
    return [evaluate_one(check) for check in checks]


def violations(results):
    """The failed results among ``results``."""
    return [r for r in results if r["status"] == FAILED]


def find_violations(checks):
    """Shortcut: evaluate ``checks`` and return only the violations."""
    return violations(evaluate(checks))


def failed_result(name, message, **labels):
    """A failed result for a problem that is not a measured value (e.g. an unknown target)."""
    result = {"name": name}
    result.update(labels)
    result.update({"measured": None, "limit": None, "comparison": None, "status": FAILED, "message": message})
    return result


def describe(result, label_keys=None):
    """One human line for a result: ``min_reuse_ratio (database=app): measured 42.1, limit >= 90``."""
    keys = label_keys if label_keys is not None else sorted(_labels_of(result))
    where = ", ".join("%s=%s" % (k, result[k]) for k in keys if k in result)
    head = "%s (%s)" % (result["name"], where) if where else result["name"]
    if result.get("message"):
        return "%s: %s" % (head, result["message"])
    return "%s: measured %s, limit %s %s" % (head, result["measured"], result["comparison"], result["limit"])


def failure_message(results, what="threshold", label_keys=None):
    """One message listing every violation in ``results``; empty string when there is none."""
    bad = violations(results)
    if not bad:
        return ""
    noun = what if len(bad) == 1 else what + "s"
    return "%d %s violated: %s" % (len(bad), noun, "; ".join(describe(r, label_keys) for r in bad))


_RESULT_KEYS = frozenset(["name", "measured", "limit", "comparison", "status", "message"])


def _labels_of(result):
    return [k for k in result if k not in _RESULT_KEYS]
