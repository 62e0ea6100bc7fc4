"""ywmessaging.scaling.dns_record against real BIND on loopback: a primary that takes signed (TSIG)
updates and a secondary that never follows it (a lagging or broken transfer), on two ports of
127.0.0.1, both answering the Phase 1 records (api A 192.0.2.10, AAAA 2001:db8::10) at the start.
The role runs from ansible-playbook on the controller, as site.yml and rollback.yml run it."""

import base64
import json
import os
import subprocess
import sys

from bindlab import KEY, PHASE1, ZONE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: ywmessaging.scaling.dns_record
"""


def role(tmp_path, servers, *extra, **variables):
    values = {
        "dns_record_provider": "nsupdate",
        "dns_record_zone": ZONE,
        "dns_record_name": "api",
        "dns_record_ipv4": ["192.0.2.20"],
        "dns_record_ipv6": [],
        "dns_record_nsupdate_server": "127.0.0.1",
        "dns_record_nsupdate_port": servers.port,
        "dns_record_tsig_name": KEY,
        "dns_record_tsig_secret": servers.secret,
        "dns_record_confirm_port": servers.port,
        "dns_record_confirm_timeout": 4,
    }
    values.update(variables)
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "vars.json").write_text(json.dumps(values))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(tmp_path / "play.yml"),
            "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}",
            "-e", f"@{tmp_path / 'vars.json'}", *extra]  # fmt: skip
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    proc.output = proc.stdout + proc.stderr
    assert servers.secret not in proc.output, "the TSIG secret was printed"
    recap = [line for line in proc.stdout.splitlines() if line.startswith("localhost ") and "changed=" in line]
    proc.changed = int(recap[-1].split("changed=")[1].split()[0]) if recap else None
    return proc


def test_the_name_answers_exactly_the_new_sets_everywhere_and_a_rerun_changes_nothing(tmp_path, bind_servers):
    servers = bind_servers
    first = role(tmp_path, servers)
    assert first.returncode == 0, first.output[-3000:]
    # the A set replaced, the old AAAA deleted (clients on IPv6 would otherwise keep the old address)
    assert servers.records() == {"A": ["192.0.2.20"], "AAAA": []}
    assert "answers the new records at 127.0.0.1" in first.output
    assert first.changed >= 1, first.stdout[-1500:]
    again = role(tmp_path, servers)
    assert again.returncode == 0 and again.changed == 0, again.stdout[-2000:]
    both = role(tmp_path, servers, dns_record_ipv4=["192.0.2.21", "192.0.2.22"], dns_record_ipv6=["2001:DB8:0::21"])
    assert both.returncode == 0, both.output[-3000:]
    assert servers.records() == {"A": ["192.0.2.21", "192.0.2.22"], "AAAA": ["2001:db8::21"]}


def test_check_mode_changes_nothing_and_says_it_would(tmp_path, bind_servers):
    servers = bind_servers
    proc = role(tmp_path, servers, "--check")
    assert proc.returncode == 0, proc.output[-3000:]
    assert proc.changed >= 1
    assert servers.records() == PHASE1


def test_a_server_that_does_not_follow_is_named_with_what_it_answers(tmp_path, bind_servers):
    servers = bind_servers
    primary, stale = "127.0.0.1#%d" % servers.port, "127.0.0.1#%d" % servers.stale_port
    proc = role(tmp_path, servers, dns_record_confirm_servers=[primary, stale], dns_record_confirm_timeout=2)
    assert proc.returncode != 0
    assert "%s answered A 192.0.2.10, AAAA 2001:db8::10" % stale in proc.output, proc.output[-3000:]
    assert "%s answered" % primary not in proc.output  # the primary has the change
    assert servers.records() == {"A": ["192.0.2.20"], "AAAA": []}


def test_a_wrong_key_changes_nothing_and_fails(tmp_path, bind_servers):
    servers = bind_servers
    wrong = base64.b64encode(os.urandom(32)).decode()
    proc = role(tmp_path, servers, dns_record_tsig_secret=wrong)
    assert proc.returncode != 0
    assert wrong not in proc.output
    assert servers.records() == PHASE1


def test_bad_input_is_named_in_one_message_before_anything_changes(tmp_path, bind_servers):
    servers = bind_servers
    proc = role(
        tmp_path,
        servers,
        dns_record_zone="Example..test",
        dns_record_name="api;rm",
        dns_record_ipv4=["api.example.com"],
        dns_record_ipv6=["192.0.2.1"],
        dns_record_ttl=0,
        dns_record_tsig_secret="",
        dns_record_confirm_servers=["ns1.example.test"],
    )
    assert proc.returncode != 0
    for variable in ("dns_record_zone", "dns_record_name", "dns_record_ipv4", "dns_record_ipv6", "dns_record_ttl",
                     "dns_record_tsig_secret", "dns_record_confirm_servers"):  # fmt: skip
        assert variable in proc.output, (variable, proc.output[-3000:])
    assert "8 problem(s)" in proc.output  # the 7 above, and no valid address left, proc.output[-3000:]
    assert servers.records() == PHASE1


def test_manual_prints_the_exact_change_and_stops_then_confirms_once_acknowledged(tmp_path, bind_servers):
    servers = bind_servers
    stop = role(tmp_path, servers, dns_record_provider="manual")
    assert stop.returncode != 0
    assert "A records exactly 192.0.2.20; AAAA records none (delete every one)" in " ".join(stop.output.split())
    assert "set dns_record_manual_acknowledged=true" in stop.output
    assert servers.records() == PHASE1
    # the operator makes the change (here: the same change, sent signed), then acknowledges it
    assert role(tmp_path, servers).returncode == 0
    done = role(tmp_path, servers, dns_record_provider="manual", dns_record_manual_acknowledged=True,
                dns_record_confirm_servers=["127.0.0.1"])  # fmt: skip
    assert done.returncode == 0, done.output[-3000:]
    assert "answers the new records at 127.0.0.1" in done.output
