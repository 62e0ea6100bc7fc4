# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Health probing: check endpoints against their expectations (status, JSON fields) concurrently,
in rounds that re-check only the failing ones until healthy, out of retries, or past a deadline."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.ywmessaging.scaling.plugins.module_utils.http_json import lookup, show, values_match
from ansible_collections.ywmessaging.scaling.plugins.module_utils.http_target import (
    ProbeError,
    http_request,
    status_problem,
)


def evaluate_response(target, status, body):
    """Check a response against the target's expectations. Returns (problems, fields)."""
    problems, fields = [], {}
    status_ok = status in target.status_codes
    if not status_ok:
        problems.append(status_problem(status, target.status_codes))
    wanted = list(target.json) + [p for p in target.return_body_fields if p not in target.json]
    if not wanted:
        return problems, fields
    try:
        data = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except ValueError:
        if status_ok:  # a 502 HTML page not being JSON is noise next to the status
            text = body[:120].decode("utf-8", "replace") if isinstance(body, bytes) else body[:120]
            problems.append("body is not JSON (starts with %s)" % show(" ".join(text.split())[:60]))
        return problems, fields
    for path in wanted:
        found, fields[path] = lookup(data, path)
        if path not in target.json:
            continue
        expected = target.json[path]
        if not found:
            problems.append("json field %r missing, expected %s" % (path, show(expected)))
        elif not values_match(expected, fields[path]):
            problems.append("json field %r is %s, expected %s" % (path, show(fields[path]), show(expected)))
    return problems, fields


def check_endpoint(target, request=http_request):
    """One attempt at one endpoint. Returns a result dict (without ``attempts``)."""
    result = dict(name=target.name, url=target.url, ok=False, status=None, latency_ms=None, fields={}, error=None)
    try:
        response = request(target)
    except ProbeError as exc:
        result.update(error=exc.message, latency_ms=exc.latency_ms)
        return result
    problems, fields = evaluate_response(target, response.status, response.body)
    result.update(status=response.status, latency_ms=response.latency_ms, fields=fields)
    result.update(ok=not problems, error="; ".join(problems) or None)
    return result


class HealthRun:
    """Check endpoints concurrently, re-checking the failing ones until healthy, out of
    retries, or past the deadline. ``retries`` unset means 0 without a deadline and
    unlimited with one."""

    def __init__(self, endpoints, max_workers=16, retries=None, delay=1.0, deadline=None, **hooks):
        self.endpoints, self.max_workers, self.delay, self.deadline = endpoints, max(1, max_workers), delay, deadline
        self.max_attempts = retries + 1 if retries is not None else (None if deadline is not None else 1)
        self.check = hooks.get("check", check_endpoint)
        self.clock = hooks.get("clock", time.monotonic)
        self.sleep = hooks.get("sleep", time.sleep)
        self.rounds = 0

    def run(self):
        results, attempts = {}, dict((ep.name, 0) for ep in self.endpoints)
        pending = list(self.endpoints)
        ends_at = None if self.deadline is None else self.clock() + self.deadline
        with ThreadPoolExecutor(max_workers=min(self.max_workers, max(1, len(pending)))) as pool:
            while pending:
                self.rounds += 1
                for endpoint, outcome in zip(pending, pool.map(self.check, pending)):
                    attempts[endpoint.name] += 1
                    outcome["attempts"] = attempts[endpoint.name]
                    results[endpoint.name] = outcome
                pending = [ep for ep in pending if not results[ep.name]["ok"]]
                out_of_retries = self.max_attempts is not None and self.rounds >= self.max_attempts
                if not pending or out_of_retries or (ends_at is not None and self.clock() + self.delay >= ends_at):
                    break
                self.sleep(self.delay)
        return [results[ep.name] for ep in self.endpoints]


def failure_message(results, rounds, elapsed_s):
    """Every failing endpoint and why, in one line ('' when none failed)."""
    failing = [r for r in results if not r["ok"]]
    if not failing:
        return ""
    return "%d of %d endpoint%s unhealthy after %d attempt%s in %.1f s: %s" % (
        len(failing),
        len(results),
        "" if len(results) == 1 else "s",
        rounds,
        "" if rounds == 1 else "s",
        elapsed_s,
        "; ".join("%s (%s): %s" % (r["name"], r["url"], r["error"]) for r in failing),
    )
