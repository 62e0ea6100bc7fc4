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
from email.utils import parsedate_to_datetime

from ansible.errors import AnsibleFilterError

PASSED = "pass"
FAILED = "fail"
NOT_CHECKED = "not_checked"
NO_COMMIT = "none"
ASN1_TIME = "%Y%m%d%H%M%SZ"
THROUGH_LB_ENDPOINTS = 4  # verify.yml checks health, detailed, ready and live through the balancer
ROLLBACK_ENDPOINTS = 3  # rollback.yml checks health, detailed and ready on each backend
JOB_RUN = re.compile(r"run=(\S+)")

DNS_OFF_IN_SITE = "site_dns_cutover is off: the API name is changed outside site.yml"
MONITORING = "Monitoring and alerting configured"
UPTIME = "99.9% uptime maintained during testing period"
UPTIME_PERCENT = 99.9
NO_MONITORING = "no monitoring hosts in the inventory (site.yml's monitoring stage did not run)"
SCALEOUT_ITEM = "Load testing shows 1.5-3x throughput improvement"
# What verify.yml does not measure, said instead of ticked.
NOT_MEASURED_BY_VERIFY = (
    (SCALEOUT_ITEM, "measured by loadtest.yml (Phase 1 against Phase 2, in its own report), not by verify.yml"),
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


def _on(name, host):
    return f"{name} ({host})" if host else name


def distribution_item(result, host=None):
    result = _dict(result, "the distribution result")
    dist = _dict(result.get("distribution"), "distribution")
    name = _on("NGINX load balancer distributing traffic to all backends", host)
    if not dist:
        return _item(name, FAILED, result.get("msg") or "not measured")
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
    return _item(name, PASSED if ok else FAILED, figure)


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


def certificate_item(result, min_days=30, now=None, host=None):
    result = _dict(result, "the certificate result")
    try:
        min_days = int(min_days)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"verify_checklist: cert_min_days must be a whole number, got {min_days!r}") from None
    if "not_after" not in result:
        return _item(_on("TLS certificate valid", host), FAILED, result.get("msg") or "no certificate served on 443")
    name = _on(f"TLS certificate valid for at least {min_days} days", host)
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


def _target_problem(target):
    labels = _dict(target.get("labels"), "a target's labels")
    where = labels.get("host") or labels.get("instance") or target.get("scrapeUrl") or "?"
    why = target.get("lastError") or target.get("health") or "unknown"
    return f"{labels.get('job', '?')} on {where} ({why})"


def monitoring_items(host, result):
    """A monitoring host's Prometheus as verify.yml read it: every target up, the alert rules loaded, an
    Alertmanager ready to notify; and the uptime of the API through the balancer over the probe history."""
    result = _dict(result, f"the monitoring result of {host}")
    targets = [_dict(t, "a target") for t in result.get("targets") or []]
    down = [t for t in targets if t.get("health") != "up"]
    rules = int(result.get("rules") or 0)
    alertmanagers = int(result.get("alertmanagers") or 0)
    ready = bool(result.get("alertmanager_ready"))
    ok = bool(targets) and not down and rules > 0 and alertmanagers > 0 and ready
    figure = (
        f"{len(targets) - len(down)}/{len(targets)} targets up, {rules} alert rules loaded, "
        f"{alertmanagers} Alertmanager(s) configured, Alertmanager {'ready' if ready else 'not ready'}"
    )
    if down:
        figure += "; not up: " + ", ".join(_target_problem(t) for t in down[:6]) + (" ..." if len(down) > 6 else "")
    if result.get("error"):
        figure += "; Prometheus: " + str(result["error"])
    items = [_item(f"{MONITORING} ({host})", PASSED if ok else FAILED, figure)]

    uptime = _dict(result.get("uptime"), "the uptime")
    probes = int(float(uptime.get("probes") or 0))
    if probes == 0 or uptime.get("ratio") in (None, "", "None"):
        items.append(_item(f"{UPTIME} ({host})", NOT_CHECKED, "no probe of the API through the balancer on record yet"))
    else:
        percent = float(uptime["ratio"]) * 100
        seconds = float(uptime.get("seconds") or 0)
        figure = (
            f"{percent:.3f} % of {probes} probes of the API through the balancer succeeded, over {seconds:.0f} s "
            f"of probe history (window {uptime.get('window', '?')})"
        )
        items.append(_item(f"{UPTIME} ({host})", PASSED if percent >= UPTIME_PERCENT else FAILED, figure))
    return items


def _per_balancer(results, key, item):
    """One item per balancer from ``<key>_by_lb`` when given, else one item from ``<key>``."""
    by_lb = _per_host(results, key + "_by_lb")
    if by_lb:
        return [item(result, host) for host, result in by_lb.items()]
    return [item(results.get(key), None)]


def verify_checklist(results, cert_min_days=30, lock_window="-15 min", check_mode=False, now=None):
    """verify.yml's checklist (see verify_checklist.yml)."""
    results = _dict(results, "the results")
    items = [pgbouncer_item(host, r) for host, r in _per_host(results, "pgbouncer").items()]
    items.append(direct_health_item(results.get("backends_direct")))
    items.extend(through_lb_item(host, r) for host, r in _per_host(results, "through_lb").items())
    items.extend(_per_balancer(results, "distribution", distribution_item))
    items.extend(_per_balancer(results, "certificate", lambda r, host: certificate_item(r, cert_min_days, now, host)))
    items.append(login_item(results.get("login")))
    items.append(message_item(results.get("message"), check_mode))
    items.append(lock_item(results.get("lock_runs"), lock_window))
    where = deployed(results.get("backends"))
    items.append(same_commit_item(where))
    if "dns" in results:
        items.append(dns_item(results["dns"], "DNS points the API name at the balancers", DNS_OFF_IN_SITE))
    items.extend(_item(name, NOT_CHECKED, why) for name, why in NOT_MEASURED_BY_VERIFY)
    monitoring = _per_host(results, "monitoring")
    for host, result in monitoring.items():
        items.extend(monitoring_items(host, result))
    if not monitoring:
        items.extend(_item(name, NOT_CHECKED, NO_MONITORING) for name in (UPTIME, MONITORING))
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


def _addresses(answer, family):
    family = _dict(_dict(answer, "a DNS answer").get(family), family)
    return ", ".join(str(a) for a in list(family.get("addresses") or []) + list(family.get("invalid") or [])) or "none"


def dns_item(result, name, not_run):
    """The dns_record role's confirmation (``dns_record_result``): passed when every authoritative server answered
    the wanted sets; ``'off'`` when the change is not this playbook's to make, None when it did not confirm."""
    if result == "off":
        return _item(name, NOT_CHECKED, not_run)
    if not result:
        return _item(name, NOT_CHECKED, "not confirmed in this run (check mode, or the stage did not run)")
    result = _dict(result, "the DNS result")
    answers = _dict(result.get("answers"), "the DNS answers")
    figure = "; ".join(
        f"{server}: A {_addresses(answer, 'A')}, AAAA {_addresses(answer, 'AAAA')}"
        for server, answer in answers.items()
    )
    figure = f"{result.get('fqdn')} -> {figure or 'no answer'}"
    previous = result.get("previous")
    if isinstance(previous, dict) and previous.get("ttl") is not None:
        # resolvers may hand out the answer from before the change for up to its TTL (when this run changed it:
        # after a change made by hand, the run that confirms it reads the new answer first)
        before = f"A {_addresses(previous, 'A')}, AAAA {_addresses(previous, 'AAAA')}"
        after = {f"A {_addresses(answer, 'A')}, AAAA {_addresses(answer, 'AAAA')}" for answer in answers.values()}
        if after != {before}:
            figure += f"; before: {before}, TTL {previous.get('ttl')} s (resolvers may keep it that long)"
    return _item(name, PASSED if result.get("confirmed") else FAILED, figure)


def origin_item(result, target):
    """The API over HTTPS at the Phase 1 origin (an upstream_health result), once the name points there."""
    name = "API answers over HTTPS at the Phase 1 origin"
    if result is None:
        return _item(name, NOT_CHECKED, "rollback_dns_origin_check is off")
    ok, _healthy, _failing, msg = health(result)
    answers = [_dict(e, "an endpoint") for e in _dict(result, "the origin check").get("endpoints") or []]
    if ok:
        msg = "; ".join(f"{e.get('name')}: HTTP {e.get('status')} in {e.get('latency_ms')} ms" for e in answers)
    return _item(name, PASSED if ok else FAILED, msg or f"{target}: not measured")


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


def rollback_checklist(results, parts, postgresql_host="", postgresql_port=5432, dns_target=""):
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
        items.append(dns_item(results.get("dns"), "DNS points the API name at the Phase 1 origin", ""))
        items.append(origin_item(results.get("origin_https"), dns_target))
    if "database" in parts:
        items.append(database_item(results.get("database_restored")))
    return {"items": items, "deployed": where, "backup": dict(_dict(results.get("backup"), "backup"))}


# ---- drills: failover.yml and loadtest.yml ---------------------------------------------------

# What the load generator (hey) prints at the end of a run.
_LOAD_TOTAL = re.compile(r"^\s*Total:\s+([0-9.]+) secs", re.M)
_LOAD_PERCENTILE = re.compile(r"^\s*(\d+)% in ([0-9.]+) secs", re.M)
_LOAD_STATUS = re.compile(r"^\s*\[(\d{3})\]\s+(\d+) responses", re.M)
_LOAD_ERROR = re.compile(r"^\s*\[(\d+)\]\s+(.*)$", re.M)
# Error classes by what the message says, first match wins.
LOAD_ERROR_CLASSES = (
    ("timeout", ("timeout", "deadline exceeded")),
    ("refused", ("connection refused",)),
    ("reset", ("reset by peer", "broken pipe", "eof")),
    ("tls", ("tls", "x509", "certificate")),
)
# A balancer's access log line (nginx_lb's log format): when, which upstreams were tried, their statuses.
_LOG_MSEC = re.compile(r"\bmsec=([0-9.]+)")
_LOG_UPSTREAM = re.compile(r"\bupstream=(.*?) upstream_status=(.*?) request_time=")
_LOG_SPLIT = re.compile(r"\s*(?:,|\s:)\s+")


def _number(value, what):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"{what} must be a number, got {value!r}") from None


def _error_class(message):
    lowered = message.lower()
    for name, needles in LOAD_ERROR_CLASSES:
        if any(needle in lowered for needle in needles):
            return name
    return "other"


def load_summary(text):
    """The summary the load generator (hey) printed, as figures (see load_summary.yml)."""
    text = str(text or "")
    status_part, _sep, error_part = text.partition("Error distribution:")
    statuses = {}
    for code, count in _LOAD_STATUS.findall(status_part):
        statuses[code] = statuses.get(code, 0) + int(count)
    errors = {}
    for count, message in _LOAD_ERROR.findall(error_part):
        name = _error_class(message)
        errors[name] = errors.get(name, 0) + int(count)
    answered = sum(statuses.values())
    requests = answered + sum(errors.values())
    total = _LOAD_TOTAL.search(text)
    seconds = float(total.group(1)) if total else None
    percentiles = {}
    for pct, secs in _LOAD_PERCENTILE.findall(text):
        if int(pct) > 0:  # hey prints "0% in 0.0000 secs" for a percentile it has too few samples for
            percentiles[int(pct)] = round(float(secs) * 1000, 1)
    bad_status = sum(n for code, n in statuses.items() if not 200 <= int(code) < 400)
    return {
        "measured": total is not None,
        "requests": requests,
        "seconds": seconds,
        "rate": round(requests / seconds, 1) if seconds else 0.0,
        "p50_ms": percentiles.get(50),
        "p95_ms": percentiles.get(95),
        "p99_ms": percentiles.get(99),
        "status": statuses,
        "status_5xx": sum(n for code, n in statuses.items() if int(code) >= 500),
        "errors": errors,
        "failed": bad_status + sum(errors.values()),
    }


def _loads(loads):
    return {name: load_summary(text) for name, text in _dict(loads, "loads").items()}


def _sum_loads(summaries):
    keys = ("requests", "failed", "status_5xx")
    out = {key: sum(s[key] for s in summaries.values()) for key in keys}
    out["rate"] = round(sum(s["rate"] for s in summaries.values()), 1)
    out["measured"] = bool(summaries) and all(s["measured"] and s["requests"] for s in summaries.values())
    return out


def _ms(value):
    return "n/a" if value is None else f"{value:g}"


def _latencies(summaries):
    return "; ".join(
        f"{name} p50/p95/p99 {_ms(s['p50_ms'])}/{_ms(s['p95_ms'])}/{_ms(s['p99_ms'])} ms"
        for name, s in summaries.items()
    )


def balancer_attempts(lines, upstream):
    """(time, ok) of every attempt a balancer made on one upstream (host:port), from nginx_lb's access
    log lines, in time order; ok when that upstream answered (a status below 500)."""
    out = []
    for line in lines or []:
        msec, tried = _LOG_MSEC.search(str(line)), _LOG_UPSTREAM.search(str(line))
        if not msec or not tried:
            continue
        addresses, statuses = _LOG_SPLIT.split(tried.group(1).strip()), _LOG_SPLIT.split(tried.group(2).strip())
        for index, address in enumerate(addresses):
            if address == upstream:
                status = statuses[index] if index < len(statuses) else "-"
                out.append((float(msec.group(1)), status.isdigit() and int(status) < 500))
    return sorted(out)


def _requests_since(lines, since):
    count = 0
    for line in lines or []:
        msec = _LOG_MSEC.search(str(line))
        if msec and float(msec.group(1)) >= since:
            count += 1
    return count


def failover_figures(results):
    """What a failover drill measured: failed GETs, how long until no request reached the backend,
    how long until it served again and its share after that (see failover_checklist.yml)."""
    results = _dict(results, "the results")
    mode = results.get("mode")
    if mode not in ("planned", "kill"):
        raise AnsibleFilterError(f"failover_checklist: mode must be planned or kill, got {mode!r}")
    stopped = _number(results.get("stopped"), "stopped")
    started = _number(results.get("started", stopped), "started")
    drained = _number(results.get("drained", stopped), "drained")
    backends = int(_number(results.get("backends") or 1, "backends"))
    lines = [line for lb_lines in _dict(results.get("log"), "log").values() for line in lb_lines or []]
    attempts = [a for a in balancer_attempts(lines, str(results.get("upstream") or "")) if a[0] >= stopped]
    if mode == "planned":
        # Out of rotation once nothing reached it between the stop and the start.
        while_out = [t for t, _ok in attempts if t < started]
        out_s = round(max(while_out) - stopped, 1) if while_out else 0.0
        after_drain = [t for t in while_out if t > drained]
    else:
        # Killed: nginx sends requests on until its passive checks mark the backend failed (each one
        # passed on to another backend by proxy_next_upstream) or systemd has brought it back.
        # Back is measured from the kill: systemd restarts it (Restart=on-failure), the drill only waits.
        failed_on_it = [t for t, ok in attempts if not ok]
        out_s = round(max(failed_on_it) - stopped, 1) if failed_on_it else 0.0
        after_drain = []
        started = stopped
    last_failure = max([t for t, ok in attempts if not ok], default=started)
    served = [t for t, ok in attempts if ok and t >= max(started, last_failure)]
    back_s = round(served[0] - started, 1) if served else None
    share = None
    if served:
        total = _requests_since(lines, served[0])
        share = round(100.0 * len(served) / total, 1) if total else None
    summaries = _loads(results.get("loads"))
    total = _sum_loads(summaries)
    return {
        "mode": mode,
        "backend": results.get("backend"),
        "requests": total["requests"],
        "failed_gets": total["failed"],
        "measured": total["measured"],
        "loads": summaries,
        "attempts_on_it": len(attempts),
        "failed_attempts_on_it": sum(1 for _t, ok in attempts if not ok),
        "reached_after_drain": len(after_drain),
        "out_of_rotation_s": out_s,
        "back_in_rotation_s": back_s,
        "share_after_back_pct": share,
        "fair_share_pct": round(100.0 / backends, 1),
    }


def failover_checklist(results, min_share=0.5):
    """failover.yml's checklist (see failover_checklist.yml)."""
    fig = failover_figures(results)
    min_share = _number(min_share, "min_share")
    what = f"{fig['mode']}, {fig['backend']}"
    items = []
    if not fig["measured"]:
        items.append(_item(f"Failover ({what}): no failed GET through the balancer", FAILED, "no load measured"))
    else:
        per_path = ", ".join(f"{name} {s['failed']}/{s['requests']}" for name, s in fig["loads"].items())
        items.append(
            _item(
                f"Failover ({what}): no failed GET through the balancer",
                PASSED if fig["failed_gets"] == 0 else FAILED,
                f"{fig['failed_gets']} of {fig['requests']} GETs failed ({per_path}); {_latencies(fig['loads'])}",
            )
        )
    if fig["mode"] == "planned":
        ok = fig["reached_after_drain"] == 0
        figure = f"no request reached it {fig['out_of_rotation_s']} s after the stop began (drained first)"
        if not ok:
            figure += f"; {fig['reached_after_drain']} requests reached it after the drain"
    else:
        ok = True
        figure = (
            f"{fig['failed_attempts_on_it']} requests failed on it and were passed to another backend; the last "
            f"{fig['out_of_rotation_s']} s after the kill"
        )
    items.append(_item(f"Failover ({what}): out of rotation while down", PASSED if ok else FAILED, figure))
    back, share, fair = fig["back_in_rotation_s"], fig["share_after_back_pct"], fig["fair_share_pct"]
    if back is None:
        items.append(_item(f"Failover ({what}): back in rotation", FAILED, "it served no request after it was started"))
    else:
        ok = share is not None and share >= fair * min_share
        since = "it was started again" if fig["mode"] == "planned" else "the kill (restarted by systemd)"
        figure = f"serving again {back} s after {since}; {_text(share)} % of requests after that (fair share {fair} %)"
        items.append(_item(f"Failover ({what}): back in rotation", PASSED if ok else FAILED, figure))
    return {"items": items, "figures": fig, "deployed": [], "backup": {}}


def _threshold(thresholds, key, default):
    return _number(_dict(thresholds, "thresholds").get(key, default), key)


# nginx's stub_status page: "Active connections: 3", the accepts/handled/requests counters, then
# "Reading: 0 Writing: 1 Waiting: 2".
_STUB_ACTIVE = re.compile(r"Active connections:\s*(\d+)")
_STUB_COUNTERS = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s*$", re.M)
_STUB_STATES = re.compile(r"Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)")
POOL_KEYS = ("clients_active", "clients_waiting", "server_connections")
POOLING_ITEM = "PgBouncer deployed and pooling 30 connections to 300+"


def stub_status(text):
    """nginx's stub_status page as numbers, or None when the text is not one."""
    text = str(text or "")
    active, counters, states = _STUB_ACTIVE.search(text), _STUB_COUNTERS.search(text), _STUB_STATES.search(text)
    if not (active and counters and states):
        return None
    accepts, handled, requests = (int(n) for n in counters.groups())
    reading, writing, waiting = (int(n) for n in states.groups())
    return {
        "active_connections": int(active.group(1)),
        "accepts": accepts,
        "handled": handled,
        "requests": requests,
        "reading": reading,
        "writing": writing,
        "waiting": waiting,
    }


def _sample_time(sample):
    """When a uri result was answered: its Date header (seconds), or None."""
    stamp = _dict(sample, "a balancer sample").get("date")
    try:
        return parsedate_to_datetime(str(stamp)).timestamp() if stamp else None
    except (TypeError, ValueError):
        return None


def balancer_peak(samples_by_host):
    """The balancers under load, from stub_status samples (uri results: content and the Date header):
    peak active and writing connections summed over the balancers, and the requests they handled per
    second between each one's first and last sample (and the longest such span, seconds). {} without a
    readable sample."""
    peak = {"active_connections": 0, "writing": 0, "rate": 0.0, "seconds": 0.0, "balancers": 0}
    for host, samples in _dict(samples_by_host, "balancer").items():
        read = []
        for sample in samples or []:
            status = stub_status(_dict(sample, f"a stub_status sample of {host}").get("content"))
            if status:
                read.append((_sample_time(sample), status))
        if not read:
            continue
        peak["balancers"] += 1
        peak["active_connections"] += max(s["active_connections"] for _t, s in read)
        peak["writing"] += max(s["writing"] for _t, s in read)
        timed = [(t, s) for t, s in read if t is not None]
        if len(timed) > 1 and timed[-1][0] > timed[0][0]:
            span = timed[-1][0] - timed[0][0]
            peak["rate"] += (timed[-1][1]["requests"] - timed[0][1]["requests"]) / span
            peak["seconds"] = max(peak["seconds"], span)
    if not peak["balancers"]:
        return {}
    peak["rate"] = round(peak["rate"], 1)
    return peak


def pgbouncer_peak(samples_by_host):
    """PgBouncer at its busiest, from pgbouncer_stats results (SHOW POOLS): per host the sample with the
    most client connections (active + waiting, over its databases), summed over the hosts; the server
    connections and waiting clients of those samples; the longest average wait. {} without a sample."""
    peak = {}
    for host, samples in _dict(samples_by_host, "pgbouncer").items():
        best = None
        for sample in samples or []:
            databases = list(_dict(_dict(sample, f"a PgBouncer sample of {host}").get("derived"), "derived").values())
            if not databases:
                continue
            here = {key: sum(int(d.get(key) or 0) for d in databases) for key in POOL_KEYS}
            here["clients"] = here["clients_active"] + here["clients_waiting"]
            waits = [float(d["avg_wait_time_ms"]) for d in databases if d.get("avg_wait_time_ms") is not None]
            here["avg_wait_time_ms"] = max(waits) if waits else None
            if best is None or here["clients"] > best["clients"]:
                best = here
            if here["avg_wait_time_ms"] is not None:
                peak["avg_wait_time_ms"] = max(peak.get("avg_wait_time_ms", 0.0), here["avg_wait_time_ms"])
        if best:
            for key in ("clients",) + POOL_KEYS:
                peak[key] = peak.get(key, 0) + best[key]
    return peak


def _pooling(peak):
    return (
        f"at peak {peak.get('clients', 0)} client connections on {peak.get('server_connections', 0)} server "
        f"connections, {peak.get('clients_waiting', 0)} waiting, avg wait {_text(peak.get('avg_wait_time_ms'))} ms"
    )


def _ok_rate(summaries):
    """Answered requests (2xx/3xx) per second, over the request kinds that ran side by side."""
    return round(sum((s["requests"] - s["failed"]) / s["seconds"] for s in summaries.values() if s["seconds"]), 1)


def _compare(compare, thresholds, budget):
    """The Phase 1 / Phase 2 comparison (closed loop, one backend straight vs the balancer to all of
    them), then PgBouncer's client connections while the balancer ran at full load."""
    compare = _dict(compare, "compare")
    if not compare:
        reason = "loadtest_compare is off: one backend straight vs the balancer was not measured"
        return {"items": [_item(SCALEOUT_ITEM, NOT_CHECKED, reason)], "missed": [], "figures": {}}
    min_scaleout = _threshold(thresholds, "min_scaleout", 1.5)
    min_clients = _threshold(thresholds, "min_pgbouncer_clients", 300)
    phase1, phase2, full = _loads(compare.get("phase1")), _loads(compare.get("phase2")), _loads(compare.get("full"))
    one, all_, at_full = _sum_loads(phase1), _sum_loads(phase2), _sum_loads(full)
    rate1, rate2 = _ok_rate(phase1), _ok_rate(phase2)
    ratio = round(rate2 / rate1, 2) if rate1 else None
    backends = int(_number(compare.get("backends") or 0, "backends"))
    failed_pct = round(100.0 * all_["failed"] / all_["requests"], 3) if all_["requests"] else 100.0
    items, missed = [], []
    figure = (
        f"through the balancer to {backends} backends {rate2:g} req/s vs one backend straight "
        f"({compare.get('phase1_target') or '?'}) {rate1:g} req/s: {_text(ratio)}x; closed loop, "
        f"{_text(compare.get('connections'))} connections per backend, {_text(compare.get('seconds'))} s each; "
        f"failed {all_['failed']}/{all_['requests']} vs {one['failed']}/{one['requests']}; "
        f"balancer {_latencies(phase2)}; one backend {_latencies(phase1)}"
    )
    if not (one["measured"] and all_["measured"]):
        miss = "throughput comparison: the load generator reported nothing for one of the two paths"
    elif ratio is None:
        miss = (
            f"throughput comparison: one backend straight answered no request ({one['failed']} failed: is its app "
            "port reachable from the load generator?)"
        )
    elif ratio < min_scaleout:
        miss = f"throughput improvement {ratio:g}x (threshold {min_scaleout:g}x)"
    elif failed_pct > budget:
        miss = f"failures through the balancer at its most {failed_pct:g} % (error budget {budget:g} %)"
    else:
        miss = None
    items.append(_item(SCALEOUT_ITEM, FAILED if miss else PASSED, figure))
    missed.extend([miss] if miss else [])
    peak = pgbouncer_peak(compare.get("pgbouncer"))
    full_rate = _ok_rate(full)
    full_text = (
        f"{_text(compare.get('full_connections'))} connections through the balancer, {full_rate:g} req/s, "
        f"{at_full['failed']} of {at_full['requests']} requests failed"
    )
    if not peak or not at_full["measured"]:
        items.append(
            _item(POOLING_ITEM, NOT_CHECKED, f"no PgBouncer sample or no load measured at full load ({full_text})")
        )
    else:
        ok = peak["clients"] >= min_clients and at_full["failed"] == 0
        items.append(_item(POOLING_ITEM, PASSED if ok else FAILED, f"{_pooling(peak)}; {full_text}"))
        if peak["clients"] < min_clients:
            missed.append(f"PgBouncer client connections {peak['clients']} at full load (threshold {min_clients:g})")
        if at_full["failed"]:
            missed.append(f"failed requests at full load {at_full['failed']} of {at_full['requests']} (threshold 0)")
    figures = {
        "phase1_rate": rate1,
        "phase2_rate": rate2,
        "ratio": ratio,
        "backends": backends,
        "connections": compare.get("connections"),
        "seconds": compare.get("seconds"),
        "phase1": phase1,
        "phase2": phase2,
        "full": full,
        "full_rate": full_rate,
        "full_connections": compare.get("full_connections"),
        "pgbouncer_peak": peak,
        "balancer_peak": balancer_peak(compare.get("balancer")),
    }
    return {"items": items, "missed": missed, "figures": figures}


def loadtest_checklist(results, thresholds=None):
    """loadtest.yml's checklist (see loadtest_checklist.yml)."""
    results = _dict(results, "the results")
    thresholds = _dict(thresholds, "thresholds")
    profile = results.get("profile") or "?"
    rate = _number(results.get("rate"), "rate")
    p95_max = _threshold(thresholds, "p95_ms", 500)
    max_5xx = _threshold(thresholds, "max_5xx", 0)
    budget = _threshold(thresholds, "error_budget_pct", 0.1)
    rate_ratio = _threshold(thresholds, "min_rate_ratio", 0.95)
    summaries = _loads(results.get("loads"))
    total = _sum_loads(summaries)
    missed = []
    items = []
    name = f"Load test {profile}"
    if not total["measured"]:
        items.append(_item(f"{name}: measured", FAILED, "the load generator reported nothing"))
        missed.append("measured: the load generator reported nothing")
    p95s = [s["p95_ms"] for s in summaries.values()]
    worst = None if not p95s or None in p95s else max(p95s)
    ok = worst is not None and worst < p95_max
    items.append(_item(f"{name}: p95 latency under {p95_max:g} ms", PASSED if ok else FAILED, _latencies(summaries)))
    if not ok:
        missed.append(f"p95 latency {_ms(worst)} ms (threshold {p95_max:g} ms)")
    ok = total["status_5xx"] <= max_5xx
    items.append(
        _item(
            f"{name}: at most {max_5xx:g} 5xx responses",
            PASSED if ok else FAILED,
            f"{total['status_5xx']} 5xx of {total['requests']} requests",
        )
    )
    if not ok:
        missed.append(f"5xx responses {total['status_5xx']} (threshold {max_5xx:g})")
    other = total["failed"] - total["status_5xx"]
    other_pct = round(100.0 * other / total["requests"], 3) if total["requests"] else 100.0
    classes = {}
    for s in summaries.values():
        for cls, n in s["errors"].items():
            classes[cls] = classes.get(cls, 0) + n
    detail = ", ".join(f"{n} {cls}" for cls, n in sorted(classes.items())) or "no connection errors"
    ok = other_pct <= budget
    items.append(
        _item(
            f"{name}: other failures within the error budget ({budget:g} %)",
            PASSED if ok else FAILED,
            f"{other} other failures, {other_pct:g} % ({detail})",
        )
    )
    if not ok:
        missed.append(f"other failures {other_pct:g} % (error budget {budget:g} %)")
    ok = total["rate"] >= rate * rate_ratio
    items.append(
        _item(
            f"{name}: the target rate of {rate:g} req/s was held",
            PASSED if ok else FAILED,
            f"{total['rate']:g} req/s achieved over {len(summaries)} request kinds",
        )
    )
    if not ok:
        missed.append(f"rate {total['rate']:g} req/s (target {rate:g} req/s, at least {rate_ratio:g} of it)")
    peak = pgbouncer_peak(results.get("pgbouncer"))
    if peak:
        items.append(_item("PgBouncer pooling under load", PASSED, _pooling(peak)))
    else:
        items.append(_item("PgBouncer pooling under load", NOT_CHECKED, "no PgBouncer sample"))
    balancer = balancer_peak(results.get("balancer"))
    if balancer:
        figure = (
            f"at peak {balancer['active_connections']} active connections, {balancer['writing']} writing; "
            f"{_text(balancer['rate'])} req/s handled over the {balancer['seconds']:g} s sampled (stub_status)"
        )
        items.append(_item(f"{name}: the balancer under load", PASSED, figure))
    compare = _compare(results.get("compare"), thresholds, budget)
    items.extend(compare["items"])
    missed.extend(compare["missed"])
    figures = {
        "profile": profile,
        "target_rate": rate,
        "rate": total["rate"],
        "requests": total["requests"],
        "status_5xx": total["status_5xx"],
        "other_failures": other,
        "p95_ms_worst": worst,
        "loads": summaries,
        "pgbouncer_peak": peak,
        "balancer_peak": balancer,
        "compare": compare["figures"],
    }
    return {"items": items, "figures": figures, "missed": missed, "deployed": [], "backup": {}}


class FilterModule(object):
    def filters(self):
        return {
            "verify_checklist": verify_checklist,
            "rollback_checklist": rollback_checklist,
            "load_summary": load_summary,
            "failover_checklist": failover_checklist,
            "loadtest_checklist": loadtest_checklist,
        }
