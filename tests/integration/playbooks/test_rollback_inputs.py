"""rollback.yml's checks on what the operator asked for, run for real on the controller: they must
stop the run before any managed host is touched, and say what is allowed. The managed hosts here
are names only (no address is ever contacted: every case fails or ends on the controller)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PLAYBOOK = os.path.join(ROOT, "rollback.yml")
INVENTORY = {
    "all": {
        "vars": {
            "rollback_dns_zone": "example.test",
            "rollback_dns_record": "api",
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
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps(INVENTORY))
    reports = tmp_path / "reports"

    def run(*extra):
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        argv = [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory), PLAYBOOK,
            "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"deploy_report_dir={reports}",
            "--limit", "localhost", *extra,
        ]  # fmt: skip
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
        proc.output = proc.stdout + proc.stderr
        return proc

    run.reports = reports
    return run


@pytest.mark.parametrize(
    "extra, says",
    [
        ([], "rollback_parts must name one or more of code, pgbouncer, dns, database (got nothing)"),
        (["-e", "rollback_parts=code,everything"], "(got code,everything)"),
        (
            ["-e", "rollback_parts=dns", "-e", "rollback_dns_provider=bind"],
            "value of rollback_dns_provider must be one of: nsupdate, cloudflare, route53, manual, got: bind",
        ),
    ],
    ids=["nothing asked", "unknown part", "unknown dns provider"],
)  # fmt: skip
def test_a_bad_request_stops_on_the_controller_naming_what_is_allowed(rollback, extra, says):
    proc = rollback(*extra)
    assert proc.returncode != 0
    assert says in " ".join(proc.output.split()), proc.output[-2000:]
    assert "PLAY [Rollback - code" not in proc.output  # stopped before the first play on managed hosts


def test_manual_dns_prints_the_exact_change_and_stops_until_acknowledged(rollback):
    proc = rollback("-e", "rollback_parts=dns", "-e", "rollback_dns_provider=manual")
    text = " ".join(proc.output.split())
    assert proc.returncode != 0
    assert "Change the A record api.example.test to 192.0.2.10 (TTL 60)" in text, proc.output[-2000:]
    assert "set rollback_dns_manual_acknowledged=true (AWX cannot answer a prompt)" in text


def test_manual_dns_once_acknowledged_goes_on_and_the_report_says_it_was_not_checked(rollback):
    rollback(
        "-e", "rollback_parts=dns", "-e", "rollback_dns_provider=manual", "-e", "rollback_dns_manual_acknowledged=true"
    )  # fmt: skip
    with open(rollback.reports / "rollback-latest.json", encoding="utf-8") as fh:
        items = {item["name"]: item for item in json.load(fh)["items"]}
    dns = items["DNS points the API name at the Phase 1 origin"]
    assert dns["status"] == "not_checked" and "manual" in dns["figure"], dns
