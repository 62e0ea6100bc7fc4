"""site.yml's DNS stage, run for real on the controller against real BIND on loopback (bindlab.py):
the API name moves from the Phase 1 origin (A 192.0.2.10, AAAA 2001:db8::10) to the balancers and is
confirmed at the authoritative server before TLS; bad input stops the run before the record changes.
The managed hosts are names only: `--limit localhost --tags dns` runs the input checks and the stage."""

import json
import re

import pytest
from bindlab import KEY, PHASE1, ZONE
from controller_play import controller_play

BALANCER = "192.0.2.40"


@pytest.fixture
def site(tmp_path, bind_servers):
    """ansible-playbook site.yml --tags dns with an inventory whose DNS settings point at the primary."""
    inventory = {
        "all": {
            "vars": {
                "api_domain": "api." + ZONE,
                "verify_pgbouncer_stats_user": "stats",
                "verify_pgbouncer_stats_password": "not-used-here",
                "dns_record_provider": "nsupdate",
                "dns_record_zone": ZONE,
                "dns_record_name": "api",
                "dns_record_nsupdate_server": "127.0.0.1",
                "dns_record_nsupdate_port": bind_servers.port,
                "dns_record_confirm_port": bind_servers.port,
                "dns_record_confirm_timeout": 4,
                "dns_record_tsig_name": KEY,
                "dns_record_tsig_secret": bind_servers.secret,
                "site_dns_cutover": True,
                "site_dns_ipv4": [BALANCER],
            },
            "children": {
                "lb": {"hosts": {"lb-1": {"ansible_host": "192.0.2.41"}}},
                "backend": {"hosts": {"backend-1": {"ansible_host": "192.0.2.11"}}},
                "pgbouncer": {"hosts": {"pgbouncer-1": {"ansible_host": "192.0.2.12"}}},
            },
            "hosts": {"localhost": {"ansible_connection": "local"}},
        },
    }

    def run(*extra, tags="dns"):
        return controller_play("site.yml", inventory, tmp_path / "reports", "--tags", tags, *extra)

    run.servers = bind_servers
    return run


def changed(proc):
    return int(re.search(r"localhost\s*:.*?changed=(\d+)", proc.output).group(1))


def test_the_cutover_leaves_exactly_the_balancers_and_a_second_run_changes_nothing(site):
    first = site()
    assert first.returncode == 0, first.output[-3000:]
    assert "api.example.test answers the new records at 127.0.0.1" in first.output
    # the A set is the balancers' alone, and the origin's AAAA is gone: IPv6 clients would stay on it
    assert site.servers.records() == {"A": [BALANCER], "AAAA": []}
    assert changed(first) >= 1
    assert "keeps its addresses" not in first.output  # dns_ttl runs only when asked for
    second = site()
    assert second.returncode == 0, second.output[-3000:]
    assert changed(second) == 0, second.output[-3000:]


def test_dns_ttl_ahead_of_the_cutover_keeps_the_records_with_the_short_ttl(site):
    # the zone's records have the Phase 1 TTL, 300 s (bindlab.py); dns_record_ttl is the role's 60 s
    assert site.servers.ttl("A") == 300 and site.servers.ttl("AAAA") == 300
    dry = site("--check", tags="dns_ttl")
    assert dry.returncode == 0, dry.output[-3000:]
    assert site.servers.ttl("A") == 300
    proc = site(tags="dns_ttl")
    assert proc.returncode == 0, proc.output[-3000:]
    assert site.servers.records() == PHASE1  # the same addresses: clients still reach the Phase 1 origin
    assert site.servers.ttl("A") == 60 and site.servers.ttl("AAAA") == 60
    assert "keeps its addresses, now with a TTL of 60 s (it was 300 s)" in proc.text, proc.output[-3000:]
    assert "run the cutover (site.yml) after that" in proc.text
    assert changed(site(tags="dns_ttl")) == 0
    # then the cutover reports what resolvers may still hold: the origin, for at most the short TTL
    cutover = site()
    assert cutover.returncode == 0 and site.servers.records() == {"A": [BALANCER], "AAAA": []}
    assert "now (at 127.0.0.1): A 192.0.2.10, AAAA 2001:db8::10, TTL 60" in cutover.text, cutover.output[-3000:]


def test_check_mode_reports_the_change_and_leaves_the_record(site):
    proc = site("--check")
    assert proc.returncode == 0, proc.output[-3000:]
    assert changed(proc) >= 1
    assert site.servers.records() == PHASE1


@pytest.mark.parametrize(
    "extra, says",
    [
        ({"site_dns_ipv4": ["10.0.0.300"]}, "site_dns_ipv4 must list IPv4 addresses, not 10.0.0.300"),
        ({"site_dns_ipv4": []}, "site_dns_ipv4 and site_dns_ipv6 are both empty: the name would not resolve at all"),
        ({"site_dns_ipv6": ["2001:db8::zz"]}, "site_dns_ipv6 must list IPv6 addresses, not 2001:db8::zz"),
        ({"dns_record_zone": "Example..test"}, "dns_record_zone must be a lower-case DNS zone"),
        ({"dns_record_tsig_secret": ""}, "dns_record_tsig_name (a key name) and dns_record_tsig_secret (vault)"),
    ],
    ids=["bad address", "no address", "bad IPv6", "bad zone", "no key"],
)  # fmt: skip
def test_bad_dns_input_stops_the_run_naming_the_variable_before_the_record_changes(site, extra, says):
    proc = site("-e", json.dumps(extra))
    assert proc.returncode != 0
    assert "input problem(s), found before any host was changed" in proc.text, proc.output[-3000:]
    assert says in proc.text, proc.output[-3000:]
    assert site.servers.records() == PHASE1


def test_a_manual_provider_prints_the_change_and_waits_for_this_playbooks_acknowledgement(site):
    manual = ["-e", "dns_record_provider=manual"]
    proc = site(*manual)
    assert proc.returncode != 0
    assert "A records exactly %s; AAAA records none (delete every one)" % BALANCER in proc.text, proc.output[-3000:]
    assert "set site_dns_manual_acknowledged=true" in proc.text
    # a rollback's acknowledgement is not this run's
    assert site(*manual, "-e", "rollback_dns_manual_acknowledged=true").returncode != 0
    assert site.servers.records() == PHASE1
