# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checklists verify.yml and rollback.yml write, judged from results shaped like the ones the
modules register (pgbouncer_stats, upstream_health, get_certificate, uri, journalctl, systemd_service)."""

import copy
from datetime import datetime, timezone

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ywmessaging.scaling.plugins.filter import deploy_checklist as f

NOW = datetime(2026, 11, 30, 20, 0, tzinfo=timezone.utc)
COMMIT = "3f2c1a9e7b5d40c6a8e1f2b3c4d5e6f708192a3b"
OLD_COMMIT = "9a8b7c6d5e4f30211a2b3c4d5e6f7a8b9c0d1e2f"
BACKENDS = ["backend-1", "backend-2", "backend-3"]


def facts(commit=COMMIT, release="20261130T193000Z-3f2c1a9e", database="pgbouncer-1:6432"):
    return {
        "release": release,
        "commit": commit,
        "previous": "20261101T100000Z-9a8b7c6d",
        "rollback_point": {"deployment": "20261130T193000Z", "release": "20261101T100000Z-9a8b7c6d"},
        "database": database,
        "service": "ywm-api",
        "port": 3000,
        "base_dir": "/srv/ywm-api",
    }


def health_ok(names):
    return {
        "changed": False,
        "failed": False,
        "healthy": list(names),
        "failing": [],
        "msg": "%d endpoints healthy" % len(names),
    }


def health_failing(healthy, failing, msg):
    return {
        "changed": False,
        "failed": False,
        "failed_when_result": False,
        "healthy": healthy,
        "failing": failing,
        "msg": msg,
    }


def pgbouncer_ok():
    return {
        "changed": False,
        "failed": False,
        "version": "PgBouncer 1.18.0",
        "derived": {
            "app": {
                "transactions": 310150,
                "server_connections": 20,
                "reuse_ratio": 99.99,
                "clients_active": 46,
                "clients_waiting": 4,
                "avg_query_time_ms": 0.919,
                "pool_utilization": 66.7,
            }
        },
        "checks": [
            {"name": "min_reuse_ratio", "database": "app", "measured": 99.99, "limit": 90.0, "status": "passed"},
            {"name": "max_pool_utilization", "database": "app", "user": "app", "measured": 66.7, "status": "passed"},
        ],
        "msg": "3 PgBouncer threshold check(s) passed, 0 skipped",
    }


def distribution(counts, ok=True, violations=()):
    total = sum(counts.values())
    return {
        "changed": False,
        "failed": False,
        "distribution": {
            "url": "https://127.0.0.1/health",
            "header": "X-Upstream-Addr",
            "requests": total,
            "succeeded": total,
            "failed": 0,
            "counts": counts,
            "shares": {k: round(100.0 * v / total, 1) for k, v in counts.items()},
            "violations": list(violations),
            "ok": ok,
        },
    }


EVEN = {"172.30.76.21:3000": 100, "172.30.76.22:3000": 100, "172.30.76.23:3000": 100}


def lock_lines(*runs):
    return {"rc": 0, "stdout_lines": ["[scheduler] Acquired lock for job cleanup-sessions run=%s" % r for r in runs]}


def dns_result(ipv4, ipv6=(), servers=("172.30.76.250",), confirmed=True, previous=None):
    """The dns_record role's dns_record_result: what each authoritative server answered, in ip_set's form, and
    (previous) what the first answered before the change, with its TTL."""
    answer = {"A": {"addresses": list(ipv4), "invalid": []}, "AAAA": {"addresses": list(ipv6), "invalid": []}}
    result = {
        "fqdn": "api.ywlab.test",
        "servers": list(servers),
        "answers": {s: answer for s in servers},
        "confirmed": confirmed,
    }
    if previous:
        ipv4_before, ipv6_before, ttl = previous
        result["previous"] = {
            "server": servers[0],
            "A": {"addresses": list(ipv4_before), "invalid": []},
            "AAAA": {"addresses": list(ipv6_before), "invalid": []},
            "ttl": ttl,
        }
    return result


def verify_results():
    """Everything verify.yml registers on a healthy stack."""
    return {
        "pgbouncer": {"pgbouncer-1": pgbouncer_ok()},
        "backends_direct": health_ok(
            ["%s %s" % (b, e) for b in BACKENDS for e in ("health", "detailed", "ready", "live")]
        ),
        "through_lb": {"lb-1": health_ok(["health", "detailed", "ready", "live"])},
        "distribution": distribution(EVEN),
        "certificate": {"not_after": "20270228200000Z", "issuer": {"CN": "Pebble Intermediate CA 4d5e6f"}},
        "login": {"status": 200},
        "message": {"status": 201, "skipped": False},
        "lock_runs": {
            "backend-1": lock_lines("r1", "r4"),
            "backend-2": lock_lines("r2"),
            "backend-3": lock_lines("r3"),
        },
        "backends": {b: facts() for b in BACKENDS},
        "backup": {"path": "/var/backups/ywmessaging-db/appdb-20261130T192900Z.dump", "size_bytes": 48213},
    }


def verify(results, **kw):
    kw.setdefault("now", NOW)
    return f.verify_checklist(results, **kw)


def by_name(checklist):
    return {item["name"]: item for item in checklist["items"]}


def test_filters_are_registered():
    assert set(f.FilterModule().filters()) == {
        "verify_checklist",
        "rollback_checklist",
        "load_summary",
        "failover_checklist",
        "loadtest_checklist",
    }


def test_a_healthy_stack_passes_every_measured_item_and_says_what_was_not_measured():
    out = verify(verify_results())
    assert [(i["name"], i["status"]) for i in out["items"]] == [
        ("PgBouncer deployed and pooling (pgbouncer-1)", "pass"),
        ("All backend servers healthy (every health endpoint, directly)", "pass"),
        ("Health checks pass through NGINX over HTTPS (lb-1)", "pass"),
        ("NGINX load balancer distributing traffic to all backends", "pass"),
        ("TLS certificate valid for at least 30 days", "pass"),
        ("Smoke test: login answers without a server error", "pass"),
        ("Smoke test: a message is created through the API", "pass"),
        ("Distributed locks prevent duplicate job execution", "pass"),
        ("All backends run the same commit", "pass"),
        ("Load testing shows 1.5-3x throughput improvement", "not_checked"),
        ("99.9% uptime maintained during testing period", "not_checked"),
        ("Monitoring and alerting configured", "not_checked"),
    ]
    assert all(i["figure"] for i in out["items"])
    assert out["deployed"] == [
        {"host": b, "role": "backend_node", "commit": COMMIT, "release": "20261130T193000Z-3f2c1a9e"} for b in BACKENDS
    ]
    assert out["backup"]["size_bytes"] == 48213


BALANCERS_DNS = "DNS points the API name at the balancers"


@pytest.mark.parametrize(
    "dns, status, figure",
    [
        (dns_result(["172.30.76.240"]), "pass", "api.ywlab.test -> 172.30.76.250: A 172.30.76.240, AAAA none"),
        (dns_result(["172.30.76.231"], confirmed=False), "fail",
         "api.ywlab.test -> 172.30.76.250: A 172.30.76.231, AAAA none"),
        (dns_result(["172.30.76.240"], previous=(["172.30.76.231"], ["2001:db8::31"], 3600)), "pass",
         "api.ywlab.test -> 172.30.76.250: A 172.30.76.240, AAAA none; before: A 172.30.76.231, AAAA 2001:db8::31, "
         "TTL 3600 s (resolvers may keep it that long)"),
        (dns_result(["172.30.76.240"], previous=(["172.30.76.240"], [], 60)), "pass",
         "api.ywlab.test -> 172.30.76.250: A 172.30.76.240, AAAA none"),
        ("off", "not_checked", "site_dns_cutover is off: the API name is changed outside site.yml"),
        (None, "not_checked", "not confirmed in this run (check mode, or the stage did not run)"),
    ],
    ids=["cut over", "a server still answers the origin", "with the answer before and its TTL",
         "unchanged in this run", "cutover off", "not confirmed"],
)  # fmt: skip
def test_the_dns_cutover_is_an_item_before_what_verify_does_not_measure(dns, status, figure):
    out = verify(dict(verify_results(), dns=dns))
    names = [i["name"] for i in out["items"]]
    assert names.index(BALANCERS_DNS) == names.index("All backends run the same commit") + 1
    assert by_name(out)[BALANCERS_DNS] == {"name": BALANCERS_DNS, "status": status, "figure": figure}


def test_nothing_measured_fails_or_says_why_and_never_ticks():
    out = verify({"pgbouncer": {"pgbouncer-1": None}, "through_lb": {"lb-1": {}}, "backends": {"backend-1": {}}})
    statuses = {i["name"]: i["status"] for i in out["items"]}
    assert "pass" not in statuses.values()
    items = by_name(out)
    assert items["PgBouncer deployed and pooling (pgbouncer-1)"]["figure"] == "not measured"
    assert items["Health checks pass through NGINX over HTTPS (lb-1)"]["figure"] == "0/4 endpoints OK: not measured"
    assert items["NGINX load balancer distributing traffic to all backends"]["figure"] == "not measured"
    assert items["TLS certificate valid"] == {
        "name": "TLS certificate valid", "status": "fail", "figure": "no certificate served on 443",
    }  # fmt: skip
    assert items["Smoke test: login answers without a server error"]["figure"] == "HTTP none"
    assert out["deployed"] == [{"host": "backend-1", "role": "backend_node", "commit": "none", "release": ""}]
    assert out["backup"] == {}


# ---- every verify item, its pass and its fail case -----------------------------------------------

PGB_FIGURE = (
    "46 clients active, 4 waiting, on 20 server connections; reuse 99.99 %, avg query 0.919 ms, pool use 66.7 %"
)


def pgbouncer_violated():
    r = pgbouncer_ok()
    r["derived"]["app"]["pool_utilization"] = 100.0
    r["checks"][1].update(measured=100.0, status="failed")
    r["msg"] = (
        "1 PgBouncer threshold violated: max_pool_utilization (database=app, user=app): measured 100.0, limit <= 80.0"
    )
    return r


@pytest.mark.parametrize(
    "result, status, figure",
    [
        (pgbouncer_ok(), "pass", PGB_FIGURE),
        (
            pgbouncer_violated(),
            "fail",
            PGB_FIGURE.replace("66.7", "100.0") + " — " + pgbouncer_violated()["msg"],
        ),
        (
            {
                "failed": False,
                "derived": {},
                "msg": "Cannot connect to PgBouncer at 172.30.76.12:6432: connection refused",
            },
            "fail",
            "Cannot connect to PgBouncer at 172.30.76.12:6432: connection refused",
        ),
        (
            {
                "derived": {
                    "app": {"transactions": 0, "server_connections": 0, "reuse_ratio": None, "clients_active": 0}
                }
            },
            "pass",
            "0 clients active, 0 waiting, on 0 server connections; reuse n/a %, avg query n/a ms, pool use n/a %",
        ),
    ],
    ids=["thresholds met", "threshold violated (failed_when: false)", "console unreachable", "no transaction yet"],
)
def test_pgbouncer_item_shows_the_pool_figures(result, status, figure):
    assert f.pgbouncer_item("pgbouncer-1", result) == {
        "name": "PgBouncer deployed and pooling (pgbouncer-1)", "status": status, "figure": figure,
    }  # fmt: skip


@pytest.mark.parametrize(
    "result, status, figure",
    [
        (health_ok(["backend-1 health", "backend-2 health", "backend-3 health"]), "pass", "3/3 endpoints OK"),
        (
            health_failing(["backend-1 health", "backend-2 health"], ["backend-3 health"], "1 of 3 unhealthy"),
            "fail",
            "2/3 endpoints OK: failing backend-3 health",
        ),
        ({"healthy": [], "failing": [], "failed": True, "msg": "invalid arguments: no endpoint"}, "fail",
         "0/0 endpoints OK: invalid arguments: no endpoint"),
    ],
    ids=["all healthy", "one failing", "module failed"],
)  # fmt: skip
def test_backends_healthy_directly(result, status, figure):
    item = f.direct_health_item(result)
    assert (item["status"], item["figure"]) == (status, figure)


@pytest.mark.parametrize(
    "result, status, figure",
    [
        (health_ok(["health", "detailed", "ready", "live"]), "pass", "4/4 endpoints OK"),
        (
            health_failing(["health", "live"], ["detailed", "ready"], "2 of 4 endpoints unhealthy after 3 attempts"),
            "fail",
            "2/4 endpoints OK: 2 of 4 endpoints unhealthy after 3 attempts",
        ),
    ],
    ids=["all four", "database down"],
)
def test_health_through_the_balancer(result, status, figure):
    assert f.through_lb_item("lb-1", result) == {
        "name": "Health checks pass through NGINX over HTTPS (lb-1)", "status": status, "figure": figure,
    }  # fmt: skip


@pytest.mark.parametrize(
    "result, status, figure",
    [
        (distribution(EVEN), "pass", "100 / 100 / 100 of 300 requests (33.3 / 33.3 / 33.3 %)"),
        (
            distribution(
                {"172.30.76.21:3000": 200, "172.30.76.22:3000": 100, "172.30.76.23:3000": 0},
                ok=False,
                violations=["172.30.76.23:3000 served 0.0 %, expected at least 25 %"],
            ),
            "fail",
            "200 / 100 / 0 of 300 requests (66.7 / 33.3 / 0.0 %)"
            " — 172.30.76.23:3000 served 0.0 %, expected at least 25 %",
        ),
        (
            {
                "failed": False,
                "distribution": {
                    "requests": 300, "succeeded": 0, "failed": 300, "counts": {}, "shares": {}, "ok": False,
                    "violations": ["300 of 300 requests failed (connection refused x300)"],
                },
            },
            "fail",
            "none of 300 requests served — 300 of 300 requests failed (connection refused x300)",
        ),
    ],
    ids=["even", "one backend starved", "balancer down"],
)  # fmt: skip
def test_distribution_figure(result, status, figure):
    item = f.distribution_item(result)
    assert (item["status"], item["figure"]) == (status, figure)


def test_each_balancer_gets_its_own_distribution_and_certificate_item():
    results = verify_results()
    del results["distribution"], results["certificate"]
    results["distribution_by_lb"] = {
        "lb-1": distribution(EVEN),
        "lb-2": distribution({"10.0.1.11:3000": 300}, ok=False, violations=["upstream 10.0.1.12:3000 served 0"]),
    }
    results["certificate_by_lb"] = {
        "lb-1": {"not_after": "20270228200000Z", "issuer": {"CN": "Pebble"}},
        "lb-2": {"msg": "connection refused"},
    }
    items = {i["name"]: i for i in f.verify_checklist(results, now="20261130200000Z")["items"]}
    assert items["NGINX load balancer distributing traffic to all backends (lb-1)"]["status"] == "pass"
    lb2 = items["NGINX load balancer distributing traffic to all backends (lb-2)"]
    assert lb2["status"] == "fail" and "10.0.1.12:3000 served 0" in lb2["figure"], lb2
    assert items["TLS certificate valid for at least 30 days (lb-1)"]["status"] == "pass"
    assert items["TLS certificate valid (lb-2)"] == {
        "name": "TLS certificate valid (lb-2)", "status": "fail", "figure": "connection refused",
    }  # fmt: skip
    assert "NGINX load balancer distributing traffic to all backends" not in items  # no unnamed item besides


@pytest.mark.parametrize(
    "not_after, days",
    [
        ("20270228200000Z", 90),
        ("20261230200000Z", 30),
        ("20261230195959Z", 29),  # a second short of 30 whole days
        ("20261130190000Z", -1),  # expired an hour ago
    ],
)
def test_certificate_days_are_whole_days_left(not_after, days):
    assert f.certificate_days(not_after, NOW) == days


@pytest.mark.parametrize(
    "result, min_days, status, figure",
    [
        (
            {"not_after": "20270228200000Z", "issuer": {"CN": "Pebble Intermediate CA 4d5e6f", "O": "Pebble"}},
            30,
            "pass",
            "90 days left (expires 2027-02-28 20:00 UTC, issuer Pebble Intermediate CA 4d5e6f)",
        ),
        (
            {"not_after": "20261215200000Z", "issuer": {"commonName": "R11", "organizationName": "Let's Encrypt"}},
            30,
            "fail",
            "15 days left (expires 2026-12-15 20:00 UTC, issuer R11)",
        ),
        ({"not_after": "20261215200000Z", "issuer": {"O": "Let's Encrypt"}}, "14", "pass",
         "15 days left (expires 2026-12-15 20:00 UTC, issuer Let's Encrypt)"),
        ({"not_after": "20261215200000Z"}, 30, "fail", "15 days left (expires 2026-12-15 20:00 UTC, issuer ?)"),
    ],
    ids=["90 days", "15 days", "15 days against 14 given as text", "no issuer"],
)  # fmt: skip
def test_certificate_item(result, min_days, status, figure):
    item = f.certificate_item(result, min_days, NOW)
    assert item == {"name": "TLS certificate valid for at least %s days" % min_days, "status": status, "figure": figure}


@pytest.mark.parametrize(
    "result, figure",
    [
        ({"failed": False, "msg": "Error connecting to 127.0.0.1:443: [Errno 111] Connection refused"},
         "Error connecting to 127.0.0.1:443: [Errno 111] Connection refused"),
        ({}, "no certificate served on 443"),
    ],
)  # fmt: skip
def test_no_certificate_fails(result, figure):
    assert f.certificate_item(result, 30, NOW) == {"name": "TLS certificate valid", "status": "fail", "figure": figure}


def test_an_unreadable_expiry_date_fails():
    item = f.certificate_item({"not_after": "Feb 28 20:00:00 2027 GMT"}, 30, NOW)
    assert item["status"] == "fail" and "unreadable expiry date" in item["figure"]


@pytest.mark.parametrize(
    "status, verdict",
    [(200, "pass"), (401, "pass"), (429, "pass"), (500, "fail"), (503, "fail"), (-1, "fail"), (None, "fail")],
)
def test_login_passes_on_any_answer_but_a_server_error(status, verdict):
    item = f.login_item({"status": status})
    assert item["status"] == verdict and item["figure"] == "HTTP %s" % ("none" if status is None else status)


@pytest.mark.parametrize(
    "result, check_mode, status, figure",
    [
        ({"status": 201, "skipped": False}, False, "pass", "HTTP 201"),
        ({"status": 401, "skipped": False}, False, "fail", "HTTP 401"),
        ({"status": None, "skipped": True}, False, "not_checked",
         "login did not return a token (set verify_smoke_email / verify_smoke_password)"),
        ({"status": None, "skipped": True}, True, "not_checked", "check mode writes nothing"),
    ],
    ids=["created", "refused", "no token", "check mode"],
)  # fmt: skip
def test_message_smoke_test(result, check_mode, status, figure):
    item = f.message_item(result, check_mode)
    assert (item["status"], item["figure"]) == (status, figure)


# ---- duplicate job runs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lock_runs, runs, duplicates",
    [
        ({"backend-1": lock_lines("r1", "r3"), "backend-2": lock_lines("r2")},
         {"r1": ["backend-1"], "r3": ["backend-1"], "r2": ["backend-2"]}, []),
        (
            {"backend-1": lock_lines("r1", "r2"), "backend-2": lock_lines("r2"), "backend-3": lock_lines("r2", "r3")},
            {"r1": ["backend-1"], "r2": ["backend-1", "backend-2", "backend-3"], "r3": ["backend-3"]},
            ["r2 on backend-1, backend-2, backend-3"],
        ),
        ({"backend-1": lock_lines("r1", "r1")}, {"r1": ["backend-1"]}, []),  # one backend logging a run twice
        ({"backend-1": {"rc": 1, "stdout_lines": []}, "backend-2": {}}, {}, []),
        ({"backend-1": {"stdout_lines": ["Acquired lock for job cleanup-sessions", "listening on 3000"]}}, {}, []),
    ],
    ids=["each once", "one run on three backends", "same backend twice", "no runs", "lines without a run id"],
)  # fmt: skip
def test_duplicate_job_runs(lock_runs, runs, duplicates):
    assert f.job_runs(lock_runs) == runs
    assert f.duplicate_runs(f.job_runs(lock_runs)) == duplicates


@pytest.mark.parametrize(
    "lock_runs, status, figure",
    [
        ({"backend-1": lock_lines("r1"), "backend-2": lock_lines("r2")}, "pass",
         "2 job runs, each on exactly one backend"),
        ({"backend-1": lock_lines("r1", "r2"), "backend-2": lock_lines("r2")}, "fail",
         "2 job runs, run twice: r2 on backend-1, backend-2"),
        ({"backend-1": lock_lines()}, "not_checked", "no job run in the window -30 min"),
    ],
)  # fmt: skip
def test_lock_item(lock_runs, status, figure):
    item = f.lock_item(lock_runs, "-30 min")
    assert (item["status"], item["figure"]) == (status, figure)


# ---- the shared "same commit" rule ----------------------------------------------------------------

SAME_COMMIT_CASES = [
    ({b: facts() for b in BACKENDS}, "pass", COMMIT),
    ({"backend-1": facts(), "backend-2": facts(OLD_COMMIT), "backend-3": facts()}, "fail", COMMIT + " / " + OLD_COMMIT),
    ({"backend-1": facts(), "backend-2": {}}, "fail", COMMIT + " / none"),
    ({"backend-1": facts(commit=""), "backend-2": facts(commit=None)}, "fail", "none"),
    ({"backend-1": None}, "fail", "none"),
    ({}, "fail", ""),
]
SAME_COMMIT_IDS = [
    "one commit",
    "two commits",
    "one backend without facts",
    "no commit anywhere",
    "not reached",
    "no backend",
]


@pytest.mark.parametrize("backends, status, figure", SAME_COMMIT_CASES, ids=SAME_COMMIT_IDS)
@pytest.mark.parametrize("playbook", ["verify", "rollback"])
def test_one_same_commit_rule_in_both_playbooks(playbook, backends, status, figure):
    if playbook == "verify":
        out = verify({"backends": backends})
    else:
        out = f.rollback_checklist({"backends": backends}, ["code"])
    assert by_name(out)["All backends run the same commit"] == {
        "name": "All backends run the same commit", "status": status, "figure": figure,
    }  # fmt: skip


# ---- rollback.yml --------------------------------------------------------------------------------


def rollback_results():
    """Everything rollback.yml registers after code + pgbouncer + dns + database went well."""
    return {
        "backends": {b: facts(OLD_COMMIT, "20261101T100000Z-9a8b7c6d", "172.30.76.10:5432") for b in BACKENDS},
        "health": {b: health_ok(["health", "detailed", "ready"]) for b in BACKENDS},
        "pgbouncer_state": {"pgbouncer-1": {"status": {"ActiveState": "inactive", "UnitFileState": "disabled"}}},
        "dns": dns_result(["172.30.76.21"]),
        "origin_https": {
            "healthy": ["https://api.ywlab.test/health at 172.30.76.21"],
            "failing": [],
            "endpoints": [{"name": "https://api.ywlab.test/health at 172.30.76.21", "status": 200, "latency_ms": 14.2}],
        },
        "database_restored": {
            "restored_from": "/var/backups/ywmessaging-db/appdb-20261130T192900Z.dump",
            "safety_dump": "/var/backups/ywmessaging-db/safety/appdb-20261130T201500Z.dump",
        },
    }


ROLLBACK_OPTIONS = {"postgresql_host": "172.30.76.10", "postgresql_port": 5432, "dns_target": "172.30.76.21"}


DIRECT = "Backends connect straight to PostgreSQL (172.30.76.10:5432)"
STOPPED = "PgBouncer stopped and disabled (pgbouncer-1)"
DNS = "DNS points the API name at the Phase 1 origin"
ORIGIN = "API answers over HTTPS at the Phase 1 origin"


def rollback(results, parts, **kw):
    return f.rollback_checklist(results, parts, **dict(ROLLBACK_OPTIONS, **kw))


@pytest.mark.parametrize(
    "parts, names",
    [
        (["code"], []),
        (["pgbouncer"], [DIRECT, STOPPED]),
        (["dns"], [DNS, ORIGIN]),
        (["database"], ["Database restored after a safety dump"]),
        ("code,pgbouncer,dns", [DIRECT, STOPPED, DNS, ORIGIN]),
    ],
)  # fmt: skip
def test_each_rollback_part_adds_its_items_after_the_backends(parts, names):
    out = rollback(rollback_results(), parts)
    always = ["Backend healthy after the rollback (%s)" % b for b in BACKENDS] + ["All backends run the same commit"]
    assert [i["name"] for i in out["items"]] == always + names
    assert {i["status"] for i in out["items"]} == {"pass"}
    assert [d["commit"] for d in out["deployed"]] == [OLD_COMMIT] * 3
    assert out["backup"] == {}


@pytest.mark.parametrize(
    "result, status, figure",
    [
        (health_ok(["health", "detailed", "ready"]), "pass", "3/3 endpoints OK, commit 9a8b7c6d5e4f"),
        (
            health_failing(["health"], ["detailed", "ready"], "2 of 3 endpoints unhealthy after 5 attempts in 10.2 s"),
            "fail",
            "1/3 endpoints OK, commit 9a8b7c6d5e4f — 2 of 3 endpoints unhealthy after 5 attempts in 10.2 s",
        ),
        (None, "fail", "0/3 endpoints OK, commit 9a8b7c6d5e4f — not measured"),
    ],
    ids=["healthy", "database unreachable", "not reached"],
)
def test_rollback_code_each_backend_healthy(result, status, figure):
    results = rollback_results()
    results["health"]["backend-2"] = result
    item = by_name(rollback(results, ["code"]))["Backend healthy after the rollback (backend-2)"]
    assert (item["status"], item["figure"]) == (status, figure)


@pytest.mark.parametrize(
    "databases, status, figure",
    [
        (["172.30.76.10:5432"] * 3, "pass", "172.30.76.10:5432, 172.30.76.10:5432, 172.30.76.10:5432"),
        (["172.30.76.10:5432", "172.30.76.12:6432", "172.30.76.10:5432"], "fail",
         "172.30.76.10:5432, 172.30.76.12:6432, 172.30.76.10:5432"),
        (["172.30.76.10:5432", None, "172.30.76.10:5432"], "fail", "172.30.76.10:5432, ?, 172.30.76.10:5432"),
    ],
    ids=["all direct", "one still on PgBouncer", "one unknown"],
)  # fmt: skip
def test_rollback_pgbouncer_backends_connect_straight_to_postgresql(databases, status, figure):
    results = rollback_results()
    for backend, database in zip(BACKENDS, databases):
        results["backends"][backend]["database"] = database
    item = by_name(rollback(results, ["pgbouncer"]))[DIRECT]
    assert (item["status"], item["figure"]) == (status, figure)


@pytest.mark.parametrize(
    "state, status, figure",
    [
        ({"status": {"ActiveState": "inactive", "UnitFileState": "disabled"}}, "pass", "inactive, disabled at boot"),
        ({"status": {"ActiveState": "failed", "UnitFileState": "masked"}}, "pass", "failed, masked at boot"),
        ({"status": {"ActiveState": "active", "UnitFileState": "disabled"}}, "fail", "active, disabled at boot"),
        ({"status": {"ActiveState": "inactive", "UnitFileState": "enabled"}}, "fail", "inactive, enabled at boot"),
        ({}, "fail", "unknown, unknown at boot"),
    ],
    ids=["stopped", "failed and masked", "still running", "starts at boot", "not read"],
)
def test_rollback_pgbouncer_stopped_and_disabled(state, status, figure):
    results = rollback_results()
    results["pgbouncer_state"]["pgbouncer-1"] = state
    item = by_name(rollback(results, ["pgbouncer"]))[STOPPED]
    assert (item["status"], item["figure"]) == (status, figure)


@pytest.mark.parametrize(
    "result, status, figure",
    [
        (dns_result(["172.30.76.21"]), "pass", "api.ywlab.test -> 172.30.76.250: A 172.30.76.21, AAAA none"),
        (dns_result(["172.30.76.21"], ["2001:db8::21"], ["172.30.76.250", "172.30.76.251#5353"]), "pass",
         "api.ywlab.test -> 172.30.76.250: A 172.30.76.21, AAAA 2001:db8::21; "
         "172.30.76.251#5353: A 172.30.76.21, AAAA 2001:db8::21"),
        (dns_result(["172.30.76.21", "172.30.76.30"], confirmed=False), "fail",
         "api.ywlab.test -> 172.30.76.250: A 172.30.76.21, 172.30.76.30, AAAA none"),
        (None, "not_checked", "not confirmed in this run (check mode, or the stage did not run)"),
    ],
    ids=["confirmed", "two servers, both families", "still at the balancer too", "not confirmed"],
)  # fmt: skip
def test_rollback_dns_is_judged_on_what_every_authoritative_server_answered(result, status, figure):
    results = rollback_results()
    results["dns"] = result
    assert by_name(rollback(results, ["dns"]))[DNS] == {"name": DNS, "status": status, "figure": figure}


@pytest.mark.parametrize(
    "result, status, figure",
    [
        (rollback_results()["origin_https"], "pass",
         "https://api.ywlab.test/health at 172.30.76.21: HTTP 200 in 14.2 ms"),
        ({"healthy": [], "failing": ["o"], "msg": "o: TLS error: certificate verify failed"}, "fail",
         "o: TLS error: certificate verify failed"),
        ({}, "fail", "not measured"),
        (None, "not_checked", "rollback_dns_origin_check is off"),
    ],
    ids=["answers", "wrong certificate", "not measured", "check off"],
)  # fmt: skip
def test_rollback_dns_says_whether_the_origin_serves_the_api_over_https(result, status, figure):
    results = rollback_results()
    results["origin_https"] = result
    assert by_name(rollback(results, ["dns"]))[ORIGIN] == {"name": ORIGIN, "status": status, "figure": figure}


@pytest.mark.parametrize(
    "restored, status, figure",
    [
        (rollback_results()["database_restored"], "pass",
         "from /var/backups/ywmessaging-db/appdb-20261130T192900Z.dump, "
         "safety dump /var/backups/ywmessaging-db/safety/appdb-20261130T201500Z.dump"),
        ({}, "fail", "no restore recorded"),
        (None, "fail", "no restore recorded"),
    ],
    ids=["restored", "nothing recorded", "not set"],
)  # fmt: skip
def test_rollback_database(restored, status, figure):
    results = rollback_results()
    results["database_restored"] = restored
    assert rollback(results, ["database"])["items"][-1] == {
        "name": "Database restored after a safety dump", "status": status, "figure": figure,
    }  # fmt: skip


def test_the_inputs_are_not_changed():
    results = rollback_results()
    before = copy.deepcopy(results)
    rollback(results, ["code", "pgbouncer", "dns", "database"])
    verify(verify_results())
    assert results == before


@pytest.mark.parametrize(
    "call",
    [
        lambda: f.verify_checklist(["not", "a", "dict"]),
        lambda: f.verify_checklist({"pgbouncer": ["pgbouncer-1"]}),
        lambda: f.verify_checklist({}, cert_min_days="a month"),
        lambda: f.rollback_checklist({}, 42),
        lambda: f.rollback_checklist({"backends": {"backend-1": "abc123"}}, ["code"]),
    ],
    ids=[
        "results not a dict",
        "per-host results not a dict",
        "days not a number",
        "parts not a list",
        "facts not a dict",
    ],
)
def test_wrong_shapes_are_named_errors(call):
    with pytest.raises(AnsibleFilterError):
        call()


# ---- monitoring (verify.yml's Prometheus play) -------------------------------------------------


def prometheus_target(job, host, health="up", error=""):
    return {"labels": {"job": job, "host": host, "instance": f"{host}:9100"}, "health": health, "lastError": error}


def monitoring_result(targets=None, rules=11, alertmanagers=1, ready=True, uptime=None):
    return {
        "targets": [prometheus_target("node", h) for h in ("pgbouncer-1", "backend-1", "lb-1")]
        if targets is None
        else targets,
        "rules": rules,
        "alertmanagers": alertmanagers,
        "alertmanager_ready": ready,
        "uptime": {"ratio": "1", "probes": "150", "seconds": "298.0", "window": "1h"} if uptime is None else uptime,
    }


MONITORING_ITEM = "Monitoring and alerting configured (monitoring-1)"
UPTIME_ITEM = "99.9% uptime maintained during testing period (monitoring-1)"


def test_monitoring_every_target_up_rules_loaded_and_alertmanager_ready_passes_with_the_figures():
    items = by_name(verify(dict(verify_results(), monitoring={"monitoring-1": monitoring_result()})))
    assert items[MONITORING_ITEM]["status"] == "pass"
    assert items[MONITORING_ITEM]["figure"] == (
        "3/3 targets up, 11 alert rules loaded, 1 Alertmanager(s) configured, Alertmanager ready"
    )
    assert items[UPTIME_ITEM]["status"] == "pass"
    assert items[UPTIME_ITEM]["figure"] == (
        "100.000 % of 150 probes of the API through the balancer succeeded, over 298 s of probe history (window 1h)"
    )
    assert "Monitoring and alerting configured" not in items  # measured per host instead


@pytest.mark.parametrize(
    "change, fragment",
    [
        (
            {
                "targets": [
                    prometheus_target("node", "lb-1"),
                    prometheus_target("pgbouncer", "pgbouncer-1", "down", "connection refused"),
                ]
            },
            "1/2 targets up, 11 alert rules loaded, 1 Alertmanager(s) configured, Alertmanager ready; "
            "not up: pgbouncer on pgbouncer-1 (connection refused)",
        ),
        ({"targets": []}, "0/0 targets up"),
        ({"rules": 0}, "0 alert rules loaded"),
        ({"alertmanagers": 0}, "0 Alertmanager(s) configured"),
        ({"ready": False}, "Alertmanager not ready"),
    ],
)
def test_monitoring_fails_naming_what_is_missing(change, fragment):
    items = by_name(verify(dict(verify_results(), monitoring={"monitoring-1": monitoring_result(**change)})))
    assert items[MONITORING_ITEM]["status"] == "fail"
    assert fragment in items[MONITORING_ITEM]["figure"]


def test_uptime_below_99_9_percent_fails_and_no_probe_history_is_not_ticked():
    low = monitoring_result(uptime={"ratio": "0.998", "probes": "1000", "seconds": "1998", "window": "1h"})
    items = by_name(verify(dict(verify_results(), monitoring={"monitoring-1": low})))
    assert items[UPTIME_ITEM]["status"] == "fail"
    assert items[UPTIME_ITEM]["figure"].startswith("99.800 % of 1000 probes")
    none = monitoring_result(uptime={"ratio": None, "probes": 0, "seconds": 0, "window": "1h"})
    items = by_name(verify(dict(verify_results(), monitoring={"monitoring-1": none})))
    assert items[UPTIME_ITEM]["status"] == "not_checked"
    assert items[UPTIME_ITEM]["figure"] == "no probe of the API through the balancer on record yet"


def test_without_monitoring_hosts_both_items_say_why_they_were_not_checked():
    items = by_name(verify(dict(verify_results(), monitoring={})))
    for name in ("Monitoring and alerting configured", "99.9% uptime maintained during testing period"):
        assert items[name] == {
            "name": name,
            "status": "not_checked",
            "figure": "no monitoring hosts in the inventory (site.yml's monitoring stage did not run)",
        }
