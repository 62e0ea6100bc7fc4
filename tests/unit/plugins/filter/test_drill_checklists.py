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
    items = {i["name"]: i for i in out["items"]}
    compare = items.pop(f.SCALEOUT_ITEM)
    assert out["missed"] == [] and {i["status"] for i in items.values()} == {"pass"}, out["items"]
    assert out["figures"]["rate"] == 199.8
    assert "9 client connections on 3 server connections, 0 waiting" in items["PgBouncer pooling under load"]["figure"]
    # without the comparison the checklist's throughput item says it was not measured: never ticked
    assert compare["status"] == "not_checked" and "loadtest_compare is off" in compare["figure"]


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
    assert {i["name"]: i for i in out["items"]}["PgBouncer pooling under load"]["status"] == "not_checked"


def test_loadtest_with_nothing_measured_fails():
    out = f.loadtest_checklist({"profile": "smoke", "rate": 10, "loads": {"health": ""}})
    assert out["missed"][0].startswith("measured")


STUB = (
    "Active connections: {active} \nserver accepts handled requests\n {n} {n} {requests} \n"
    "Reading: 0 Writing: {writing} Waiting: 3 \n"
)


def stub(active, requests, writing, date):
    return {"content": STUB.format(active=active, n=requests // 10, requests=requests, writing=writing), "date": date}


def pools(*clients, server=30, waiting=0):
    """PgBouncer samples: one per client count, over two databases that split the clients."""
    return [
        {
            "derived": {
                "appdb": {"clients_active": n - n // 2, "clients_waiting": waiting, "server_connections": server - 5},
                "other": {"clients_active": n // 2, "clients_waiting": 0, "server_connections": 5},
            }
        }
        for n in clients
    ]


def compared(phase1_ok, phase2_ok, clients=(40, 320, 200), full_ok=3000, full_errors=""):
    return {
        "profile": "load",
        "rate": 100,
        "loads": {"health": hey(ok=1000)},
        "compare": {
            "phase1": {"health": hey(ok=phase1_ok)},
            "phase2": {"health": hey(ok=phase2_ok)},
            "full": {"read": hey(ok=full_ok, errors=full_errors)},
            "full_connections": 400,
            "backends": 3,
            "connections": 400,
            "seconds": 10,
            "phase1_target": "http://10.0.1.1:3000",
            "pgbouncer": {"pgb-1": pools(*clients)},
            "balancer": {
                "lb-1": [
                    stub(5, 1000, 1, "Tue, 01 Dec 2026 15:00:00 GMT"),
                    stub(410, 31000, 300, "Tue, 01 Dec 2026 15:00:10 GMT"),
                ]
            },
        },
    }


def test_stub_status_reads_nginx_counters_and_rejects_other_text():
    assert f.stub_status(STUB.format(active=7, n=10, requests=99, writing=2)) == {
        "active_connections": 7, "accepts": 10, "handled": 10, "requests": 99, "reading": 0, "writing": 2, "waiting": 3,
    }  # fmt: skip
    assert f.stub_status("<html>404 Not Found</html>") is None


def test_balancer_peak_sums_balancers_and_measures_requests_per_second_between_samples():
    peak = f.balancer_peak(
        {
            "lb-1": [
                stub(5, 1000, 1, "Tue, 01 Dec 2026 15:00:00 GMT"),
                stub(50, 6000, 9, "Tue, 01 Dec 2026 15:00:10 GMT"),
            ],
            "lb-2": [
                stub(20, 500, 4, "Tue, 01 Dec 2026 15:00:02 GMT"),
                stub(8, 2500, 2, "Tue, 01 Dec 2026 15:00:06 GMT"),
            ],
            "lb-3": [{"content": "not stub_status", "date": "Tue, 01 Dec 2026 15:00:00 GMT"}],
        }
    )
    assert peak == {"active_connections": 70, "writing": 13, "rate": 1000.0, "seconds": 10.0, "balancers": 2}
    assert f.balancer_peak({"lb-1": [{"content": "", "date": None}]}) == {}


def test_pgbouncer_peak_takes_each_hosts_busiest_sample_over_its_databases_and_sums_the_hosts():
    peak = f.pgbouncer_peak({"pgb-1": pools(40, 320, 200, waiting=3), "pgb-2": pools(10)})
    assert peak["clients"] == 323 + 10 and peak["clients_waiting"] == 3
    assert peak["server_connections"] == 60  # 30 on each host at its busiest


def test_compare_passes_at_the_runbooks_ratio_and_300_pgbouncer_clients():
    out = f.loadtest_checklist(compared(phase1_ok=1000, phase2_ok=2800))
    items = {i["name"]: i for i in out["items"]}
    assert out["missed"] == [], out["missed"]
    scale = items[f.SCALEOUT_ITEM]
    assert (
        scale["status"] == "pass"
        and "279.7 req/s vs one backend straight (http://10.0.1.1:3000) 99.9 req/s: 2.8x" in scale["figure"]
    )
    assert out["figures"]["compare"]["ratio"] == 2.8
    pooling = items[f.POOLING_ITEM]
    assert pooling["status"] == "pass" and "320 client connections on 30 server connections" in pooling["figure"]
    assert out["figures"]["compare"]["balancer_peak"]["rate"] == 3000.0


@pytest.mark.parametrize(
    ("phase2_ok", "clients", "threshold", "missed"),
    [
        (1200, (320,), {}, "throughput improvement 1.2x (threshold 1.5x)"),
        (2800, (120,), {}, "PgBouncer client connections 120 at full load (threshold 300)"),
        (2800, (320,), {"min_scaleout": 3}, "throughput improvement 2.8x (threshold 3x)"),
        (2800, (320,), {"min_pgbouncer_clients": 400}, "PgBouncer client connections 320 at full load (threshold 400)"),
    ],
)
def test_compare_names_the_threshold_it_missed(phase2_ok, clients, threshold, missed):
    out = f.loadtest_checklist(compared(phase1_ok=1000, phase2_ok=phase2_ok, clients=clients), threshold)
    assert out["missed"] == [missed]


def test_compare_with_failures_through_the_balancer_beyond_the_budget_fails():
    results = compared(phase1_ok=1000, phase2_ok=2800)
    results["compare"]["phase2"] = {"health": hey(ok=2800, errors=ERRORS)}
    out = f.loadtest_checklist(results)
    assert out["missed"] == ["failures through the balancer at its most 0.214 % (error budget 0.1 %)"]


def test_pooling_at_full_load_needs_every_request_answered():
    out = f.loadtest_checklist(compared(phase1_ok=1000, phase2_ok=2800, full_errors=ERRORS))
    assert out["missed"] == ["failed requests at full load 6 of 3006 (threshold 0)"]
    pooling = {i["name"]: i for i in out["items"]}[f.POOLING_ITEM]
    assert pooling["status"] == "fail" and "6 of 3006 requests failed" in pooling["figure"]


class OneShotValues(dict):
    """A mapping whose values() can be walked once, like the lazy containers Ansible hands a filter."""

    def values(self):
        return iter(list(super().values()))


def test_pgbouncer_peak_reads_every_figure_of_a_mapping_it_may_walk_only_once():
    derived = OneShotValues(appdb={"clients_active": 310, "clients_waiting": 2, "server_connections": 30})
    peak = f.pgbouncer_peak({"pgb-1": [{"derived": derived}]})
    assert (peak["clients"], peak["server_connections"]) == (312, 30)


def test_compare_with_a_path_that_reported_nothing_fails():
    results = compared(phase1_ok=1000, phase2_ok=2800)
    results["compare"]["phase1"] = {"health": ""}
    out = f.loadtest_checklist(results)
    assert out["missed"] == ["throughput comparison: the load generator reported nothing for one of the two paths"]


def test_compare_with_one_backend_unreachable_says_so():
    results = compared(phase1_ok=0, phase2_ok=2800)
    results["compare"]["phase1"] = {"read": hey(ok=0, errors=ERRORS)}
    out = f.loadtest_checklist(results)
    assert out["missed"] == [
        "throughput comparison: one backend straight answered no request (6 failed: is its app port reachable from "
        "the load generator?)"
    ]
