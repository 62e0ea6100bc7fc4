# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The drills' checklists (failover.yml, loadtest.yml), judged from load generator summaries and
balancer access log lines shaped like the ones hey and nginx_lb write."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ywmessaging.scaling.plugins.filter import deploy_checklist as f

HEY = """
Summary:
  Total:\t10.0100 secs
  Slowest:\t0.0400 secs
  Requests/sec:\t99.9000

Latency distribution:
  10% in 0.0010 secs
  50% in 0.0040 secs
  95% in 0.0120 secs
  99% in 0.0300 secs

Status code distribution:
  [200]\t{ok} responses
{extra}
"""
ERRORS = """
Error distribution:
  [3]\tGet "https://10.0.0.1/health": dial tcp 10.0.0.1:443: connect: connection refused
  [1]\tGet "https://10.0.0.1/health": context deadline exceeded (Client.Timeout exceeded while awaiting headers)
  [2]\tGet "https://10.0.0.1/health": EOF
"""
LINE = (
    '10.0.0.9 - - [2026-11-30T23:00:00+00:00] msec={t:.3f} "GET /health HTTP/1.1" 200 60 "hey/0.0.1" rid=x '
    "upstream={up} upstream_status={st} request_time=0.002 upstream_connect_time=0.000 "
    "upstream_header_time=0.002 upstream_response_time=0.002"
)
B1, B2, B3 = "10.0.1.1:3000", "10.0.1.2:3000", "10.0.1.3:3000"


def hey(ok=1000, extra="", errors=""):
    return HEY.format(ok=ok, extra=extra) + errors


def log(*entries):
    return [LINE.format(t=t, up=up, st=st) for t, up, st in entries]


def test_load_summary_reads_rate_percentiles_statuses_and_error_classes():
    s = f.load_summary(hey(ok=990, extra="  [502]\t4 responses\n  [404]\t1 responses", errors=ERRORS))
    assert s["measured"] and s["requests"] == 1001 and s["seconds"] == 10.01
    assert (s["p50_ms"], s["p95_ms"], s["p99_ms"]) == (4.0, 12.0, 30.0)
    assert s["status_5xx"] == 4 and s["status"] == {"200": 990, "502": 4, "404": 1}
    assert s["errors"] == {"refused": 3, "timeout": 1, "reset": 2}
    assert s["failed"] == 4 + 1 + 6


def test_load_summary_a_percentile_without_samples_is_none_and_no_output_is_not_measured():
    s = f.load_summary(HEY.replace("99% in 0.0300", "0% in 0.0000").format(ok=10, extra=""))
    assert s["p99_ms"] is None and s["p95_ms"] == 12.0
    assert f.load_summary("")["measured"] is False


def test_balancer_attempts_follow_every_upstream_tried_with_its_status():
    lines = log((100.0, f"{B1}, {B2}", "502, 200"), (101.0, B2, "200"), (102.0, f"{B3} : {B1}", "200 : 504"))
    assert f.balancer_attempts(lines, B1) == [(100.0, False), (102.0, False)]
    assert f.balancer_attempts(lines, B2) == [(100.0, True), (101.0, True)]


def planned(**over):
    results = {
        "mode": "planned",
        "backend": "backend-1",
        "upstream": B1,
        "stopped": 100,
        "drained": 102,
        "started": 110,
        "backends": 3,
        "loads": {"health": hey(), "read": hey()},
        "log": {
            "lb-1": log((100.5, B1, "200"), (101.0, B2, "200"), (105.0, B3, "200"))
            + log(*[(112 + i, [B1, B2, B3][i % 3], "200") for i in range(30)])
        },
    }
    results.update(over)
    return results


def test_failover_planned_passes_with_no_failed_get_and_the_backend_back_at_its_share():
    out = f.failover_checklist(planned())
    assert [i["status"] for i in out["items"]] == ["pass", "pass", "pass"], out["items"]
    fig = out["figures"]
    assert fig["failed_gets"] == 0 and fig["requests"] == 2000
    assert fig["out_of_rotation_s"] == 0.5 and fig["back_in_rotation_s"] == 2.0
    assert fig["share_after_back_pct"] == pytest.approx(33.3, abs=0.1)


def test_failover_fails_on_a_failed_get_a_request_after_the_drain_or_no_return():
    failed = f.failover_checklist(planned(loads={"health": hey(errors=ERRORS)}))
    assert failed["items"][0]["status"] == "fail" and "6 of 1006 GETs failed" in failed["items"][0]["figure"]
    late = f.failover_checklist(planned(log={"lb-1": log((104.0, B1, "200"))}))
    assert late["items"][1]["status"] == "fail" and "after the drain" in late["items"][1]["figure"]
    assert late["items"][2]["status"] == "fail" and "served no request" in late["items"][2]["figure"]
    starved = planned(log={"lb-1": log(*[(112 + i, B1 if i == 0 else B2, "200") for i in range(30)])})
    assert f.failover_checklist(starved)["items"][2]["status"] == "fail"


def test_failover_kill_counts_requests_passed_on_and_measures_back_from_the_kill():
    results = planned(
        mode="kill",
        started=100,
        log={
            "lb-1": log((100.2, f"{B1}, {B2}", "502, 200"), (101.5, f"{B1}, {B3}", "502, 200"), (103.0, B1, "200"))
            + log((103.5, B2, "200"), (104.0, B3, "200"))
        },
    )
    out = f.failover_checklist(results)
    assert [i["status"] for i in out["items"]] == ["pass", "pass", "pass"], out["items"]
    assert out["figures"]["failed_attempts_on_it"] == 2 and out["figures"]["out_of_rotation_s"] == 1.5
    assert out["figures"]["back_in_rotation_s"] == 3.0


def test_failover_refuses_an_unknown_mode():
    with pytest.raises(AnsibleFilterError, match="mode must be planned or kill"):
        f.failover_checklist(planned(mode="reboot"))


def test_loadtest_passes_within_the_thresholds_and_reports_pgbouncer_at_peak():
    samples = [
        {"derived": {"appdb": {"clients_active": n, "clients_waiting": 0, "server_connections": 3}}} for n in (5, 9)
    ]
    out = f.loadtest_checklist(
        {"profile": "smoke", "rate": 200, "loads": {"health": hey(), "read": hey()}, "pgbouncer": {"pgb": samples}}
    )
    assert out["missed"] == [] and {i["status"] for i in out["items"]} == {"pass"}, out["items"]
    assert out["figures"]["rate"] == 199.8
    assert "9 client connections on 3 server connections, 0 waiting" in out["items"][-1]["figure"]


def test_loadtest_names_every_threshold_missed_with_its_measured_value():
    out = f.loadtest_checklist(
        {"profile": "load", "rate": 1500, "loads": {"health": hey(extra="  [503]\t2 responses", errors=ERRORS)}},
        {"p95_ms": 10, "max_5xx": 0, "error_budget_pct": 0.1},
    )
    assert out["missed"] == [
        "p95 latency 12 ms (threshold 10 ms)",
        "5xx responses 2 (threshold 0)",
        "other failures 0.595 % (error budget 0.1 %)",
        "rate 100.7 req/s (target 1500 req/s, at least 0.95 of it)",
    ]
    assert out["items"][-1]["status"] == "not_checked"


def test_loadtest_with_nothing_measured_fails():
    out = f.loadtest_checklist({"profile": "smoke", "rate": 10, "loads": {"health": ""}})
    assert out["missed"][0].startswith("measured")
