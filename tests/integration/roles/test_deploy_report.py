"""deploy_report: the checklist with its figures, what runs where, stage timings — in Markdown and
JSON on the controller, with a stable "latest" link, and never counted as a change."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.path.dirname(sys.executable)

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {name: ywmessaging.scaling.deploy_report, tasks_from: mark}
      vars: {deploy_report_stage: pgbouncer}
    - ansible.builtin.pause: {seconds: 1}
    - ansible.builtin.include_role: {name: ywmessaging.scaling.deploy_report, tasks_from: mark}
      vars: {deploy_report_stage: backends}
    - ansible.builtin.include_role: {name: ywmessaging.scaling.deploy_report}
      vars:
        deploy_report_dir: "%(dir)s"
        deploy_report_items: %(items)s
        deploy_report_deployed:
          - {host: backend-1, role: backend_node, release: 1.1.0, commit: abc123}
        deploy_report_backup: {path: /var/backups/ywmessaging-db/appdb-x.dump, size_bytes: 20480, toc_entries: 12,
                               created: "2026-11-28T10:00:00Z"}
"""


def run(tmp_path, items):
    book = tmp_path / "report.yml"
    book.write_text(PLAYBOOK % {"dir": tmp_path / "reports", "items": json.dumps(items)})
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(PATH=BIN + os.pathsep + env["PATH"], ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    interpreter = f"ansible_python_interpreter={sys.executable}"
    return subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", interpreter, str(book)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


ITEMS = [
    {
        "name": "PgBouncer deployed and pooling 30 connections to 300+",
        "status": "pass",
        "figure": "300 clients -> 30 server",
    },
    {"name": "Distributed locks prevent duplicate job execution", "status": "fail", "figure": "run x on 2 | backends"},
    {"name": "99.9% uptime maintained during testing period", "status": "not_checked", "figure": "monitoring"},
]


def test_report_is_written_in_both_formats_and_counts_as_no_change(tmp_path):
    proc = run(tmp_path, ITEMS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "changed=0" in proc.stdout
    reports = tmp_path / "reports"
    data = json.loads((reports / "deploy-latest.json").read_text())
    assert data["result"] == "FAIL"
    assert data["counts"] == {"pass": 1, "fail": 1, "not_checked": 1}
    assert [s["stage"] for s in data["stages"]] == ["pgbouncer", "backends"]
    assert data["stages"][0]["seconds"] >= 1
    assert data["deployed"][0]["commit"] == "abc123"
    md = (reports / "deploy-latest.md").read_text()
    assert md.startswith("# Phase 2 deploy report — FAIL")
    assert "| ✅ pass | PgBouncer deployed and pooling 30 connections to 300+ | 300 clients -> 30 server |" in md
    assert "run x on 2 \\| backends" in md  # a pipe in a figure does not break the table
    assert "➖ not checked" in md
    assert "| backend-1 | backend_node | 1.1.0 | abc123 |" in md
    assert "`/var/backups/ywmessaging-db/appdb-x.dump` — 20480 bytes" in md
    assert os.path.islink(reports / "deploy-latest.md")
    # The files are named after the time stamp inside them, so a report's "generated" finds its Markdown.
    stamp = data["generated"].replace("-", "").replace(":", "")
    assert os.readlink(reports / "deploy-latest.json") == f"deploy-{stamp}.json"
    assert (reports / f"deploy-{stamp}.md").read_text() == md


def test_all_passing_items_make_a_passing_report(tmp_path):
    proc = run(tmp_path, [dict(ITEMS[0])])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "reports" / "deploy-latest.json").read_text())["result"] == "PASS"


@pytest.mark.parametrize("bad", [{"name": "x", "status": "maybe"}, {"status": "pass"}])
def test_a_malformed_item_is_refused_naming_the_variable(tmp_path, bad):
    proc = run(tmp_path, [bad])
    assert proc.returncode != 0
    assert "deploy_report_items" in proc.stdout + proc.stderr
    assert not (tmp_path / "reports").exists()
