"""rollback.yml's checks on what the operator asked for, run for real on the controller: they must
stop the run before any managed host is touched, and say what is allowed. The managed hosts here
are names only (no address is ever contacted: every case fails or ends on the controller)."""

import json

import dns.query
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest
from bindlab import KEY, PHASE1, ZONE, free_port
from controller_play import controller_play

INVENTORY = {
    "all": {
        "vars": {
            "api_domain": "api.example.test",
            "dns_record_zone": "example.test",
            "dns_record_name": "api",
            "rollback_dns_target": "192.0.2.10",
        },
        "children": {
            "backend": {"hosts": {"backend-1": {"ansible_host": "192.0.2.11"}}},
            "pgbouncer": {"hosts": {"pgbouncer-1": {"ansible_host": "192.0.2.12"}}},
        },
        "hosts": {"localhost": {"ansible_connection": "local"}},
    },
}


@pytest.fixture
def rollback(tmp_path):
    reports = tmp_path / "reports"

    def run(*extra):
        return controller_play("rollback.yml", INVENTORY, reports, *extra)

    run.reports = reports
    return run


@pytest.mark.parametrize(
    "extra, says",
    [
        ([], "rollback_parts must name one or more of code, pgbouncer, dns, database (got nothing)"),
        (["-e", "rollback_parts=code,everything"], "(got code,everything)"),
        (
            ["-e", "rollback_parts=dns", "-e", "dns_record_provider=bind"],
            "value of dns_record_provider must be one of: nsupdate, cloudflare, route53, manual, got: bind",
        ),
    ],
    ids=["nothing asked", "unknown part", "unknown dns provider"],
)  # fmt: skip
def test_a_bad_request_stops_on_the_controller_naming_what_is_allowed(rollback, extra, says):
    proc = rollback(*extra)
    assert proc.returncode != 0
    assert says in " ".join(proc.output.split()), proc.output[-2000:]
    assert "PLAY [Rollback - code" not in proc.output  # stopped before the first play on managed hosts


# 192.0.2.10 serves nothing here: these tests are about the record, not the origin's HTTPS
NO_ORIGIN_CHECK = ["-e", "rollback_dns_origin_check=false"]


def test_an_origin_that_does_not_serve_https_never_gets_the_name(rollback, bind_servers):
    dns = json.dumps(
        {
            "dns_record_provider": "nsupdate",
            "dns_record_nsupdate_server": "127.0.0.1",
            "dns_record_nsupdate_port": bind_servers.port,
            "dns_record_tsig_name": KEY,
            "dns_record_tsig_secret": bind_servers.secret,
            "rollback_dns_target": "127.0.0.1",
            "rollback_dns_origin_port": free_port(),
        }
    )  # fmt: skip (nothing listens there)
    proc = rollback("-e", "rollback_parts=dns", "-e", dns)
    text = " ".join(proc.output.split())
    assert proc.returncode != 0
    assert "Not pointing api.example.test at 127.0.0.1: 1 of 1 endpoint unhealthy" in text, text[-2000:]
    assert "https://api.example.test/health at 127.0.0.1" in text and "refused" in text
    assert bind_servers.records() == PHASE1  # untouched


def test_manual_dns_prints_the_exact_change_and_stops_until_acknowledged(rollback):
    proc = rollback("-e", "rollback_parts=dns", "-e", "dns_record_provider=manual", *NO_ORIGIN_CHECK)
    text = " ".join(proc.output.split())
    assert proc.returncode != 0
    # the exact change, AAAA included: one left on the balancer would keep IPv6 clients there
    change = "for api.example.test (zone example.test), TTL 60: A records exactly 192.0.2.10; AAAA records none"
    assert change + " (delete every one)" in text, proc.output[-2000:]
    assert "set rollback_dns_manual_acknowledged=true (AWX cannot answer a prompt)" in text


def delete_aaaa(servers):
    """What the operator does by hand at the provider: the AAAA record goes (signed, as BIND wants)."""
    update = dns.update.UpdateMessage(ZONE, keyring=dns.tsigkeyring.from_text({KEY: servers.secret}),
                                      keyalgorithm=dns.tsig.HMAC_SHA256)  # fmt: skip
    update.delete("api", "AAAA")
    assert dns.query.tcp(update, "127.0.0.1", port=servers.port, timeout=5).rcode() == 0


def test_manual_dns_once_acknowledged_is_confirmed_at_the_authoritative_server(rollback, bind_servers):
    confirm = ["-e", "rollback_parts=dns", "-e", "dns_record_provider=manual", *NO_ORIGIN_CHECK,
               "-e", "rollback_dns_manual_acknowledged=true",
               "-e", json.dumps({"dns_record_confirm_servers": ["127.0.0.1#%d" % bind_servers.port],
                                 "dns_record_confirm_timeout": 2})]  # fmt: skip
    # acknowledged, but the AAAA record is still there: the rollback is not done, and says why
    early = rollback(*confirm)
    assert early.returncode != 0
    assert "answered A 192.0.2.10, AAAA 2001:db8::10" in early.output, early.output[-2000:]
    delete_aaaa(bind_servers)
    done = rollback(*confirm)  # the run still fails: no backend was checked (--limit localhost)
    assert "api.example.test answers the new records at 127.0.0.1#%d" % bind_servers.port in done.output, done.output[
        -3000:
    ]
    with open(rollback.reports / "rollback-latest.json", encoding="utf-8") as fh:
        items = {item["name"]: item for item in json.load(fh)["items"]}
    dns_item = items["DNS points the API name at the Phase 1 origin"]
    figure = "api.example.test -> 127.0.0.1#%d: A 192.0.2.10, AAAA none" % bind_servers.port
    assert dns_item["status"] == "pass" and dns_item["figure"] == figure, dns_item
    origin = items["API answers over HTTPS at the Phase 1 origin"]
    assert origin == {"name": origin["name"], "status": "not_checked", "figure": "rollback_dns_origin_check is off"}
