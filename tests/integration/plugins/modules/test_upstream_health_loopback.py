# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ywmessaging.scaling.upstream_health run through the real `ansible` CLI against loopback servers."""

import time

MODULE = "ywmessaging.scaling.upstream_health"
HEALTHY = {"status": "ok", "checks": {"database": "ok", "redis": "ok"}, "uptime": 12.5}


def by_name(result):
    return dict((e["name"], e) for e in result["endpoints"])


def test_healthy_endpoints_pass_with_fields_latency_and_one_attempt(http_server, run_module):
    a = http_server(status=200, body=HEALTHY)
    b = http_server(status=200, body=HEALTHY)
    head_only = http_server(status=204)
    result = run_module(
        MODULE,
        {
            "endpoints": [
                {"name": "a", "url": a.url("/health/detailed")},
                {"name": "b", "host": "127.0.0.1", "port": b.port},
                {"name": "head", "url": head_only.url("/"), "method": "HEAD", "status_codes": [204]},
            ],
            "path": "/health/detailed",
            "json": {"status": "ok", "checks.database": "ok"},
            "return_body_fields": ["uptime"],
        },
    )
    assert result.get("failed") is not True, result["msg"]
    assert result["changed"] is False
    assert result["healthy"] == ["a", "b", "head"] and result["failing"] == []
    assert result["attempts"] == 1
    eps = by_name(result)
    assert eps["a"]["fields"] == {"status": "ok", "checks.database": "ok", "uptime": 12.5}
    assert eps["b"]["url"] == "http://127.0.0.1:%d/health/detailed" % b.port
    assert eps["head"]["status"] == 204 and eps["head"]["fields"] == {}
    for entry in eps.values():
        assert entry["ok"] is True and entry["error"] is None and entry["attempts"] == 1
        assert 0 < entry["latency_ms"] < 2000
    assert result["msg"] == "3 endpoints healthy"


def test_every_kind_of_failure_is_listed_in_one_message(http_server, refused_port, run_module):
    good = http_server(status=200, body=HEALTHY)
    sick = http_server(status=503, body={"status": "degraded", "checks": {"database": "error"}})
    wrong = http_server(status=200, body={"status": "ok", "checks": {"database": "error"}})
    slow = http_server(status=200, body=HEALTHY, delay=3)
    result = run_module(
        MODULE,
        {
            "endpoints": [
                {"name": "good", "url": good.url()},
                {"name": "sick", "url": sick.url()},
                {"name": "wrong-field", "url": wrong.url()},
                {"name": "refused", "url": "http://127.0.0.1:%d/health" % refused_port},
                {"name": "slow", "url": slow.url(), "timeout": 1},
            ],
            "json": {"status": "ok", "checks.database": "ok"},
        },
    )
    assert result["failed"] is True and result["_rc"] != 0
    assert result["healthy"] == ["good"]
    assert result["failing"] == ["sick", "wrong-field", "refused", "slow"]
    msg = result["msg"]
    assert msg.startswith("4 of 5 endpoints unhealthy after 1 attempt")
    assert "sick (%s): HTTP status 503, expected 200" % sick.url() in msg
    assert 'wrong-field (%s): json field \'checks.database\' is "error", expected "ok"' % wrong.url() in msg
    assert "refused (http://127.0.0.1:%d/health): connection refused" % refused_port in msg
    assert "slow (%s): timed out after 1 s" % slow.url() in msg
    assert "good (" not in msg
    eps = by_name(result)
    assert eps["sick"]["status"] == 503 and eps["sick"]["fields"]["status"] == "degraded"
    assert eps["refused"]["status"] is None
    # checked concurrently and the slow one abandoned after its 1 s timeout, not its 3 s delay
    assert 1000 <= result["elapsed_ms"] < 2500


def test_retries_wait_for_an_endpoint_that_recovers(http_server, run_module):
    def recovering(request):
        became_healthy = time.monotonic() - request.server.first_hit >= 2.0
        return dict(status=200, body=HEALTHY) if became_healthy else dict(status=503, body={"status": "starting"})

    flapping = http_server(recovering)
    steady = http_server(status=200, body=HEALTHY)
    result = run_module(
        MODULE,
        {
            "endpoints": [{"name": "flapping", "url": flapping.url()}, {"name": "steady", "url": steady.url()}],
            "json": {"status": "ok"},
            "retries": 10,
            "delay": 0.5,
        },
    )
    assert result.get("failed") is not True, result["msg"]
    eps = by_name(result)
    assert 4 <= eps["flapping"]["attempts"] <= 7
    assert eps["steady"]["attempts"] == 1  # only the failing endpoint is checked again
    assert steady.hits == 1
    assert result["attempts"] == eps["flapping"]["attempts"]


def test_deadline_waits_for_recovery_and_gives_up_when_it_passes(http_server, run_module):
    def recovering(request):
        healthy = time.monotonic() - request.server.first_hit >= 1.5
        return dict(status=200, body=HEALTHY) if healthy else dict(status=503, body={"status": "starting"})

    flapping = http_server(recovering)
    never = http_server(status=503, body={"status": "down"})
    result = run_module(
        MODULE,
        {
            "endpoints": [{"name": "flapping", "url": flapping.url()}, {"name": "never", "url": never.url()}],
            "deadline": 3,
            "delay": 0.5,
        },
    )
    assert result["failed"] is True
    assert result["healthy"] == ["flapping"] and result["failing"] == ["never"]
    # rounds every 0.5 s; none starts once the 3 s deadline would pass during the delay
    assert 2400 <= result["elapsed_ms"] <= 4500
    assert by_name(result)["never"]["attempts"] >= 4
    assert result["msg"].startswith("1 of 2 endpoints unhealthy after %d attempts" % result["attempts"])


def test_tls_by_address_with_ca_path_and_sni(http_server, tls_material, run_module):
    seen_sni = []

    def echo(request):
        return dict(
            status=200,
            body={
                "status": "ok",
                "sni": getattr(request.connection, "sni_name", None),
                "host": request.headers.get("Host"),
            },
        )

    server = http_server(echo, tls_context=tls_material.server_context(seen_sni))
    name = tls_material.name
    result = run_module(
        MODULE,
        {
            "endpoints": [
                {
                    "name": "by-ip-with-sni",
                    "url": server.url(),
                    "sni_host": name,
                    "json": {"sni": name, "host": "%s:%d" % (name, server.port)},
                },
                {
                    "name": "by-host-header",
                    "url": server.url(),
                    "host_header": name,
                    "json": {"sni": name, "host": name},
                },
                {"name": "no-sni", "url": server.url()},
                {"name": "wrong-ca", "url": server.url(), "sni_host": name, "ca_path": tls_material.other_ca_path},
                {"name": "unverified", "url": server.url(), "validate_certs": False},
            ],
            "ca_path": tls_material.ca_path,
            "scheme": "https",
        },
    )
    eps = by_name(result)
    assert eps["by-ip-with-sni"]["ok"] is True, eps["by-ip-with-sni"]["error"]
    assert eps["by-host-header"]["ok"] is True, eps["by-host-header"]["error"]
    assert eps["unverified"]["ok"] is True
    # the server really received the name as SNI
    assert seen_sni.count(name) == 3
    assert eps["no-sni"]["ok"] is False
    assert eps["no-sni"]["error"].startswith("TLS certificate verification failed for 127.0.0.1")
    assert "mismatch" in eps["no-sni"]["error"]
    assert eps["wrong-ca"]["ok"] is False
    assert eps["wrong-ca"]["error"].startswith("TLS certificate verification failed for %s" % name)
    assert result["failed"] is True and result["failing"] == ["no-sni", "wrong-ca"]
    assert "no-sni (" in result["msg"] and "wrong-ca (" in result["msg"]


def _backends(http_server, n):
    return [http_server(status=200, body=HEALTHY) for _index in range(n)]


def test_distribution_counts_requests_per_upstream(http_server, balancer, run_module):
    backends = _backends(http_server, 3)
    lb = balancer([b.addr for b in backends])
    result = run_module(
        MODULE,
        {
            "distribution": {
                "url": lb.url,
                "count": 30,
                "concurrency": 3,
                "expected": [b.addr for b in backends],
                "tolerance": 0.2,
            }
        },
    )
    assert result.get("failed") is not True, result["msg"]
    dist = result["distribution"]
    assert dist["counts"] == dict((b.addr, 10) for b in backends)
    assert [b.hits for b in backends] == [10, 10, 10]
    assert dist["shares"] == dict((b.addr, 33.3) for b in backends)
    assert (dist["requests"], dist["succeeded"], dist["failed"], dist["missing_header"]) == (30, 30, 0, 0)
    assert dist["ok"] is True and dist["violations"] == []
    assert result["endpoints"] == [] and result["attempts"] == 0


def test_distribution_detects_traffic_to_an_excluded_upstream(http_server, balancer, run_module):
    kept = _backends(http_server, 3)
    drained = http_server(status=200, body=HEALTHY)  # still in the balancer's rotation: the drain did not happen
    lb = balancer([b.addr for b in kept] + [drained.addr])
    result = run_module(
        MODULE,
        {
            "distribution": {
                "url": lb.url,
                "count": 20,
                "expected": [b.addr for b in kept],
                "excluded": [drained.addr],
            }
        },
    )
    assert result["failed"] is True
    assert result["distribution"]["counts"][drained.addr] == 5
    assert result["msg"] == (
        "distribution through %s: excluded upstream %s served 5 of 20 requests (25.0%%)" % (lb.url, drained.addr)
    )


def test_distribution_accepts_a_stopped_upstream_the_balancer_skips(http_server, balancer, refused_port, run_module):
    live = _backends(http_server, 2)
    stopped = "127.0.0.1:%d" % refused_port
    lb = balancer([live[0].addr, live[1].addr, stopped])
    result = run_module(
        MODULE,
        {
            "distribution": {
                "url": lb.url,
                "count": 30,
                "concurrency": 2,
                "expected": [b.addr for b in live],
                "excluded": [stopped],
            }
        },
    )
    assert result.get("failed") is not True, result["msg"]
    dist = result["distribution"]
    # the stopped upstream's turns fall through to the next one in the rotation
    assert dist["counts"] == {live[0].addr: 20, live[1].addr: 10}
    assert dist["tried_before_serving"] == {stopped: 10}


def test_distribution_detects_unfair_shares_and_missing_headers(http_server, balancer, run_module):
    a, b, c = _backends(http_server, 3)
    lb = balancer([a.addr] * 4 + [b.addr, c.addr], drop_header=[9, 19, 29])
    result = run_module(
        MODULE,
        {"distribution": {"url": lb.url, "count": 30, "expected": [a.addr, b.addr, c.addr], "tolerance": 0.2}},
    )
    assert result["failed"] is True
    dist = result["distribution"]
    # requests 9 and 19 went to a, 29 to c, without a header
    assert dist["counts"] == {a.addr: 18, b.addr: 5, c.addr: 4}
    assert dist["missing_header"] == 3
    assert dist["required_per_upstream"] == 7.2
    assert dist["violations"] == [
        "3 of 30 responses had no X-Upstream-Addr header, so their upstream is unknown",
        "upstream %s served 5 of 27 requests (18.5%%), below the minimum of 7.2 "
        "(fair share 9 with tolerance 0.2)" % b.addr,
        "upstream %s served 4 of 27 requests (14.8%%), below the minimum of 7.2 "
        "(fair share 9 with tolerance 0.2)" % c.addr,
    ]
    for violation in dist["violations"]:
        assert violation in result["msg"]


def test_check_mode_runs_the_checks_and_changes_nothing(http_server, refused_port, run_module):
    server = http_server(status=200, body=HEALTHY)
    ok = run_module(MODULE, {"endpoints": [{"url": server.url()}], "json": {"status": "ok"}}, check=True)
    assert ok.get("failed") is not True, ok["msg"]
    assert ok["changed"] is False and ok["healthy"] == [server.url()]
    assert server.hits == 1
    bad = run_module(MODULE, {"endpoints": [{"url": "http://127.0.0.1:%d/" % refused_port}]}, check=True)
    assert bad["failed"] is True and "connection refused" in bad["msg"]


def test_invalid_arguments_fail_before_any_request(http_server, run_module):
    server = http_server(status=200, body=HEALTHY)
    result = run_module(
        MODULE,
        {"endpoints": [{"url": server.url(), "method": "HEAD", "json": {"status": "ok"}}, {"url": "ftp://x/"}]},
    )
    assert result["failed"] is True
    assert result["msg"].startswith("invalid arguments: ")
    assert "endpoints[0]" in result["msg"] and "endpoints[1]" in result["msg"]
    assert server.hits == 0


def test_distribution_fair_share_follows_weights(http_server, balancer, run_module):
    heavy, light = _backends(http_server, 2)
    lb = balancer([heavy.addr, heavy.addr, light.addr])  # like nginx `server heavy weight=2;`
    args = {"url": lb.url, "count": 30, "expected": [heavy.addr, light.addr], "tolerance": 0.1}
    weighted = run_module(MODULE, {"distribution": dict(args, weights={heavy.addr: 2})})
    assert weighted.get("failed") is not True, weighted["msg"]
    assert weighted["distribution"]["counts"] == {heavy.addr: 20, light.addr: 10}
    assert weighted["distribution"]["required"] == {heavy.addr: 18.0, light.addr: 9.0}
    assert weighted["msg"] == "distribution ok: %s" % ", ".join(
        "%s=%d" % item for item in sorted({heavy.addr: 20, light.addr: 10}.items())
    )
    # the same traffic judged as if both weighed the same: the light one is short of 90% of 15
    equal = run_module(MODULE, {"distribution": args})
    assert equal["failed"] is True
    assert equal["distribution"]["violations"] == [
        "upstream %s served 10 of 30 requests (33.3%%), below the minimum of 13.5 "
        "(fair share 15 with tolerance 0.1)" % light.addr
    ]


def test_the_argument_spec_rejects_a_target_given_twice_before_any_request(http_server, run_module):
    server = http_server(status=200, body=HEALTHY)
    result = run_module(
        MODULE,
        {
            "endpoints": [{"url": server.url(), "host": "127.0.0.1"}],
            "distribution": {"url": server.url(), "tolerance": 0.2, "min_share": 20},
        },
    )
    assert result["failed"] is True
    assert "mutually exclusive: url|host found in endpoints" in result["msg"]
    assert server.hits == 0
