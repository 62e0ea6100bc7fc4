# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The runbook's checklists from what verify.yml and rollback.yml measured.

Documentation: ``verify_checklist.yml`` and ``rollback_checklist.yml`` next to this file.

Both filters take the registered results as plain data (dicts keyed by host, in inventory order)
and return ``{'items': [...], 'deployed': [...], 'backup': {...}}`` for the deploy_report role. An
item is ``{'name', 'status', 'figure'}`` with status ``pass``, ``fail`` or ``not_checked``; what
nothing measured is said as ``not_checked`` with the reason, never ticked. The rules both
playbooks share (a backend's health, every backend on one commit) are written once, below.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections.abc import Mapping
from datetime import datetime, timezone

from ansible.errors import AnsibleFilterError

PASSED = "pass"
FAILED = "fail"
NOT_CHECKED = "not_checked"
NO_COMMIT = "none"
ASN1_TIME = "%Y%m%d%H%M%SZ"
THROUGH_LB_ENDPOINTS = 4  # verify.yml checks health, detailed, ready and live through the balancer
ROLLBACK_ENDPOINTS = 3  # rollback.yml checks health, detailed and ready on each backend
JOB_RUN = re.compile(r"run=(\S+)")

# What verify.yml does not measure, said instead of ticked.
NOT_MEASURED_BY_VERIFY = (
    ("Load testing shows 1.5-3x throughput improvement", "measured by tests/bench, not by verify.yml"),
    ("99.9% uptime maintained during testing period", "needs monitoring history"),
    ("Monitoring and alerting configured", "not automated by this collection yet"),
)


def _item(name, status, figure):
    return {"name": name, "status": status, "figure": figure}


def _dict(value, what):
    """A result, or {} for one nothing registered (a host not reached, a play skipped)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AnsibleFilterError(f"{what} must be a dict, got {type(value).__name__}")
    return value


def _per_host(results, key):
    return _dict(_dict(results, "the results").get(key), key)


def _unique(values):
    return list(dict.fromkeys(values))


def _text(value, missing="n/a"):
    return missing if value is None else str(value)


# ---- shared rules ------------------------------------------------------------------------------


def health(result):
    """An upstream_health result judged: (ok, healthy names, failing names, message).

    Not measured (no ``healthy`` list) is not healthy, and its message says so. With
    ``failed_when: false`` the registered ``failed`` is always false, so the lists decide; ``failed``
    still counts when a caller keeps it.
    """
    result = _dict(result, "a health result")
    healthy = list(result.get("healthy") or [])
    failing = list(result.get("failing") or [])
    measured = "healthy" in result
    ok = measured and not failing and not result.get("failed")
    return ok, healthy, failing, result.get("msg") or ("" if measured else "not measured")


def deployed(backends):
    """What runs where: one entry per backend from its backend_node_facts; no commit reads 'none'."""
    out = []
    for host, facts in _dict(backends, "backends").items():
        facts = _dict(facts, f"the backend_node_facts of {host}")
        out.append(
            {
                "host": host,
                "role": "backend_node",
                "commit": facts.get("commit") or NO_COMMIT,
                "release": facts.get("release") or "",
            }
        )
    return out


def same_commit_item(deployed_list):
    """Every backend on one commit; a backend with no commit, or no backend at all, fails it."""
    commits = _unique(d["commit"] for d in deployed_list)
    ok = len(commits) == 1 and commits[0] not in (NO_COMMIT, "")
    return _item("All backends run the same commit", PASSED if ok else FAILED, " / ".join(commits))


# ---- verify.yml --------------------------------------------------------------------------------


def _pgbouncer_failed(result):
    # pgbouncer_stats fails on a violated threshold; registered with failed_when: false, the failed
    # checks are what is left of that.
    checks = result.get("checks") or []
    return bool(result.get("failed")) or any(c.get("status") == "failed" for c in checks if isinstance(c, Mapping))


def pgbouncer_item(host, result):
    name = f"PgBouncer deployed and pooling ({host})"
    result = _dict(result, f"the PgBouncer result of {host}")
    databases = list(_dict(result.get("derived"), "derived").values())
    if not databases:
        return _item(name, FAILED, result.get("msg") or "not measured")
    d = databases[0]
    figure = (
        f"{d.get('clients_active') or 0} clients active, {d.get('clients_waiting') or 0} waiting, "
        f"on {d.get('server_connections') or 0} server connections; reuse {_text(d.get('reuse_ratio'))} %, "
        f"avg query {_text(d.get('avg_query_time_ms'))} ms, pool use {_text(d.get('pool_utilization'))} %"
    )
    if _pgbouncer_failed(result):
        return _item(name, FAILED, f"{figure} — {result.get('msg') or 'a threshold failed'}")
    return _item(name, PASSED, figure)


def direct_health_item(result):
    ok, healthy, failing, msg = health(result)
    figure = f"{len(healthy)}/{len(healthy) + len(failing)} endpoints OK"
    if failing:
        figure += ": failing " + ", ".join(failing)
    elif not ok and msg:
        figure += ": " + msg
    return _item("All backend servers healthy (every health endpoint, directly)", PASSED if ok else FAILED, figure)


def through_lb_item(host, result):
    ok, healthy, _failing, msg = health(result)
    figure = f"{len(healthy)}/{THROUGH_LB_ENDPOINTS} endpoints OK"
    if not ok and msg:
        figure += ": " + msg
    return _item(f"Health checks pass through NGINX over HTTPS ({host})", PASSED if ok else FAILED, figure)


def distribution_item(result):
    result = _dict(result, "the distribution result")
    dist = _dict(result.get("distribution"), "distribution")
    if not dist:
        return _item(
            "NGINX load balancer distributing traffic to all backends", FAILED, result.get("msg") or "not measured"
        )
    ok = bool(dist.get("ok")) and not result.get("failed")
    counts = _dict(dist.get("counts"), "counts")
    shares = _dict(dist.get("shares"), "shares")
    if counts:
        served = " / ".join(str(v) for v in counts.values())
        figure = f"{served} of {dist.get('requests') or 0} requests ({' / '.join(str(v) for v in shares.values())} %)"
    else:
        figure = f"none of {dist.get('requests') or 0} requests served"
    if dist.get("violations"):
        figure += " — " + "; ".join(dist["violations"])
    return _item("NGINX load balancer distributing traffic to all backends", PASSED if ok else FAILED, figure)


def _utc(value):
    if value is None:
        return datetime.now(timezone.utc)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.strptime(str(value), ASN1_TIME).replace(tzinfo=timezone.utc)


def _issuer(issuer):
    if isinstance(issuer, Mapping):
        for key in ("CN", "commonName", "O", "organizationName"):
            if issuer.get(key):
                return str(issuer[key])
        return "?"
    return str(issuer) if issuer else "?"


def certificate_days(not_after, now=None):
    """Whole days (floored) from now until an ASN.1 time such as 20270301120000Z; negative once expired."""
    return (_utc(not_after) - _utc(now)).days


def certificate_item(result, min_days=30, now=None):
    result = _dict(result, "the certificate result")
    try:
        min_days = int(min_days)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"verify_checklist: cert_min_days must be a whole number, got {min_days!r}") from None
    if "not_after" not in result:
        return _item("TLS certificate valid", FAILED, result.get("msg") or "no certificate served on 443")
    name = f"TLS certificate valid for at least {min_days} days"
    try:
        expires = _utc(result["not_after"])
    except (TypeError, ValueError):
        return _item(name, FAILED, f"unreadable expiry date {result['not_after']!r}")
    days = certificate_days(expires, now)
    figure = f"{days} days left (expires {expires:%Y-%m-%d %H:%M} UTC, issuer {_issuer(result.get('issuer'))})"
    return _item(name, PASSED if days >= min_days else FAILED, figure)


def _status(result):
    try:
        return int(result.get("status") or 0)
    except (TypeError, ValueError):
        return 0


def login_item(result):
    result = _dict(result, "the login result")
    ok = 200 <= _status(result) < 500  # the runbook: any answer but a server error
    return _item(
        "Smoke test: login answers without a server error",
        PASSED if ok else FAILED,
        f"HTTP {_text(result.get('status'), 'none')}",
    )


def message_item(result, check_mode=False):
    result = _dict(result, "the message result")
    name = "Smoke test: a message is created through the API"
    if result.get("skipped") or result.get("status") is None:
        why = (
            "check mode writes nothing"
            if check_mode
            else "login did not return a token (set verify_smoke_email / verify_smoke_password)"
        )
        return _item(name, NOT_CHECKED, why)
    return _item(name, PASSED if _status(result) == 201 else FAILED, f"HTTP {result['status']}")


def job_runs(lock_runs):
    """Job run id -> the backends that executed it, from each backend's 'Acquired lock for job' lines."""
    runs = {}
    for host, result in _dict(lock_runs, "lock_runs").items():
        for line in _dict(result, f"the job runs of {host}").get("stdout_lines") or []:
            match = JOB_RUN.search(str(line))
            if match:
                runs.setdefault(match.group(1), [])
                if host not in runs[match.group(1)]:
                    runs[match.group(1)].append(host)
    return runs


def duplicate_runs(runs):
    """'<run> on <host>, <host>' for every job run more than one backend executed."""
    return [f"{run} on {', '.join(hosts)}" for run, hosts in runs.items() if len(hosts) > 1]


def lock_item(lock_runs, window="-15 min"):
    name = "Distributed locks prevent duplicate job execution"
    runs = job_runs(lock_runs)
    if not runs:
        return _item(name, NOT_CHECKED, f"no job run in the window {window}")
    dup = duplicate_runs(runs)
    figure = f"{len(runs)} job runs, " + ("run twice: " + "; ".join(dup) if dup else "each on exactly one backend")
    return _item(name, FAILED if dup else PASSED, figure)


def verify_checklist(results, cert_min_days=30, lock_window="-15 min", check_mode=False, now=None):
    """verify.yml's checklist (see verify_checklist.yml)."""
    results = _dict(results, "the results")
    items = [pgbouncer_item(host, r) for host, r in _per_host(results, "pgbouncer").items()]
    items.append(direct_health_item(results.get("backends_direct")))
    items.extend(through_lb_item(host, r) for host, r in _per_host(results, "through_lb").items())
    items.append(distribution_item(results.get("distribution")))
    items.append(certificate_item(results.get("certificate"), cert_min_days, now))
    items.append(login_item(results.get("login")))
    items.append(message_item(results.get("message"), check_mode))
    items.append(lock_item(results.get("lock_runs"), lock_window))
    where = deployed(results.get("backends"))
    items.append(same_commit_item(where))
    items.extend(_item(name, NOT_CHECKED, why) for name, why in NOT_MEASURED_BY_VERIFY)
    return {"items": items, "deployed": where, "backup": dict(_dict(results.get("backup"), "backup"))}


# ---- rollback.yml ------------------------------------------------------------------------------


def rollback_backend_item(host, result, commit):
    ok, healthy, failing, msg = health(result)
    figure = f"{len(healthy)}/{ROLLBACK_ENDPOINTS} endpoints OK, commit {commit[:12]}"
    if not ok and msg:
        figure += " — " + msg
    return _item(f"Backend healthy after the rollback ({host})", PASSED if ok else FAILED, figure)


def direct_database_items(backends, postgresql_host, postgresql_port=5432):
    direct = f"{postgresql_host}:{postgresql_port or 5432}"
    endpoints = [
        _dict(facts, f"the backend_node_facts of {host}").get("database") or "?"
        for host, facts in _dict(backends, "backends").items()
    ]
    ok = _unique(endpoints) == [direct]
    return _item(f"Backends connect straight to PostgreSQL ({direct})", PASSED if ok else FAILED, ", ".join(endpoints))


def pgbouncer_stopped_item(host, result):
    status = _dict(_dict(result, f"the PgBouncer state of {host}").get("status"), "status")
    active = status.get("ActiveState") or "unknown"
    at_boot = status.get("UnitFileState") or "unknown"
    ok = active in ("inactive", "failed") and at_boot in ("disabled", "masked")
    return _item(f"PgBouncer stopped and disabled ({host})", PASSED if ok else FAILED, f"{active}, {at_boot} at boot")


def dns_item(answer, target, name, provider):
    if answer is None:
        return _item(
            "DNS points the API name at the Phase 1 origin",
            NOT_CHECKED,
            f"provider {provider}: check the record at the provider",
        )
    answer = [str(a) for a in answer] if isinstance(answer, (list, tuple)) else [str(answer)]
    return _item(
        f"DNS points the API name at {target}",
        PASSED if answer == [target] else FAILED,
        f"{name} -> {', '.join(answer)}",
    )


def database_item(restored):
    restored = _dict(restored, "database_restored")
    if not restored:
        return _item("Database restored after a safety dump", FAILED, "no restore recorded")
    figure = f"from {restored.get('restored_from')}, safety dump {restored.get('safety_dump')}"
    return _item("Database restored after a safety dump", PASSED, figure)


def _parts(parts):
    if isinstance(parts, str):
        return [p.strip() for p in parts.split(",") if p.strip()]
    if not isinstance(parts, (list, tuple)):
        raise AnsibleFilterError(f"rollback_checklist: parts must be a list, got {type(parts).__name__}")
    return list(parts)


def rollback_checklist(
    results, parts, postgresql_host="", postgresql_port=5432, dns_target="", dns_name="", dns_provider=""
):
    """rollback.yml's checklist (see rollback_checklist.yml)."""
    results = _dict(results, "the results")
    parts = _parts(parts)
    backends = _per_host(results, "backends")
    health_by_host = _per_host(results, "health")
    where = deployed(backends)
    items = [rollback_backend_item(d["host"], health_by_host.get(d["host"]), d["commit"]) for d in where]
    items.append(same_commit_item(where))
    if "pgbouncer" in parts:
        items.append(direct_database_items(backends, postgresql_host, postgresql_port))
        items.extend(pgbouncer_stopped_item(host, r) for host, r in _per_host(results, "pgbouncer_state").items())
    if "dns" in parts:
        items.append(dns_item(results.get("dns_answer"), dns_target, dns_name, dns_provider))
    if "database" in parts:
        items.append(database_item(results.get("database_restored")))
    return {"items": items, "deployed": where, "backup": dict(_dict(results.get("backup"), "backup"))}


class FilterModule(object):
    def filters(self):
        return {
            "verify_checklist": verify_checklist,
            "rollback_checklist": rollback_checklist,
        }
