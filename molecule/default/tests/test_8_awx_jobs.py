"""The AWX job templates and workflow run the way AWX runs them, against the lab: a clean checkout of
the repository, its collections installed the way a project sync installs them (no ./run setup, no
.collections link), then one ansible-runner private data directory per job, built from
playbooks/vars/awx_job_templates.yml (tests/tooling/awx_jobs.py), walked in the order of
playbooks/vars/awx_workflow.yml. They start where every rollback part left the lab (test_7: Phase 1's
topology, the database restored), so the workflow's deploy is also site.yml bringing Phase 2 back
after a full rollback. Last in the scenario: the failure path leaves the code rolled back."""

import importlib.util
import json
import os
import shutil
from datetime import datetime

import pytest
import yaml
from stacklab import ALL_VARS, GROUPS, PROJECT, SECRETS, LoadClient, dns_answer, on, record, served_releases

_spec = importlib.util.spec_from_file_location("awx_jobs", os.path.join(PROJECT, "tests", "tooling", "awx_jobs.py"))
awx_jobs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(awx_jobs)
TEMPLATES, WORKFLOW = awx_jobs.definitions()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The checkout AWX runs jobs from and the collections its project sync installed."""
    checkout = awx_jobs.checkout(tmp_path_factory.mktemp("awx") / "project")
    assert not (checkout / ".collections").exists() and not (checkout / ".venv").exists()
    collections = tmp_path_factory.mktemp("awx") / "requirements_collections"
    sync = awx_jobs.project_sync(checkout, collections)
    assert sync.returncode == 0, sync.stdout + sync.stderr
    return checkout, collections


def run_workflow(project, inventory, tmp_path):
    """The workflow from its first node; every template node is one ansible-runner job."""
    checkout, collections = project
    jobs = {}

    def run_node(node):
        job = awx_jobs.launch(
            TEMPLATES[node["template"]], tmp_path / node["identifier"], checkout, inventory, collections,
            answers=node.get("extra_data"), job_id=len(jobs) + 1,
        )  # fmt: skip
        jobs[node["identifier"]] = job
        return job.status

    return awx_jobs.walk(WORKFLOW, run_node), jobs


def report(collections, kind):
    """The newest report a job wrote: next to the playbooks of the collection the sync installed."""
    path = collections / "ansible_collections" / "ywmessaging" / "scaling" / "reports" / f"{kind}-latest.json"
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def assert_no_secret_in(jobs):
    for name, job in jobs.items():
        text = job.events_text() + job.stdout
        leaked = [secret[:4] + "..." for secret in SECRETS if secret in text]
        assert not leaked, f"the {name} job's events or output carry inventory secrets: {leaked}"


def test_the_workflow_deploys_phase_2_again_after_a_full_rollback_and_verifies_it(project, tmp_path):
    checkout, collections = project
    states, jobs = run_workflow(project, checkout / "inventories" / "lab", tmp_path)
    assert states["deploy"] == "successful", jobs["deploy"].stdout[-3000:]
    assert states["verify"] == "successful", jobs["verify"].stdout[-3000:]
    assert {states[n] for n in ("rollback-code", "approve-database-restore", "restore-database")} == {"dnr"}
    # Phase 2 again, from the Phase 1 topology every rollback part left: v1.1.0 through PgBouncer, the
    # API name on the balancer
    assert set(served_releases().values()) == {"1.1.0"}
    pgbouncer = on(GROUPS["pgbouncer"][0], "systemctl is-active pgbouncer; systemctl is-enabled pgbouncer")
    assert pgbouncer.stdout.split() == ["active", "enabled"]
    assert dns_answer() == ALL_VARS["site_dns_ipv4"]
    assert report(collections, "deploy")["result"] == "PASS"
    assert_no_secret_in(jobs)
    for name, job in jobs.items():
        assert job.rc == 0, name
    record(
        "AWX workflow deploy -> verify, as ansible-runner jobs (s)",
        round(sum(job_seconds(j) for j in jobs.values()), 1),
    )


def job_seconds(job):
    stats = [e for e in job.events if e.get("event") == "playbook_on_stats"]
    starts = [e for e in job.events if e.get("event") == "playbook_on_start"]
    if not stats or not starts:
        return 0
    return round((created(stats[-1]) - created(starts[0])).total_seconds(), 1)


def created(event):
    return datetime.fromisoformat(event["created"])


def test_a_failed_deploy_rolls_the_code_back_and_waits_for_a_person_before_any_restore(project, tmp_path):
    """The deploy fails on a bad inventory value (as an operator's typo would): nothing is changed on
    any host, the code rollback job runs, and the database restore waits for the approval."""
    checkout, collections = project
    inventory = tmp_path / "inventory"
    shutil.copytree(checkout / "inventories" / "lab", inventory)
    (inventory / "host_vars").mkdir(exist_ok=True)
    (inventory / "host_vars" / "lb-1.yml").write_text(yaml.safe_dump({"certbot_contact_email": "ops-at-example"}))
    client = LoadClient()
    states, jobs = run_workflow(project, inventory, tmp_path)
    figures = client.finish()
    assert states["deploy"] == "failed"
    deploy = jobs["deploy"]
    assert "input problem(s), found before any host was changed" in deploy.stdout, deploy.stdout[-3000:]
    assert "certbot_contact_email" in deploy.stdout
    assert all(counts["changed"] == 0 for counts in deploy.recap().values()), deploy.recap()
    assert states["verify"] == "dnr"
    assert states["rollback-code"] == "successful", jobs["rollback-code"].stdout[-3000:]
    assert states["approve-database-restore"] == "pending" and states["restore-database"] == "waiting"
    assert "restore-database" not in jobs
    # every backend back on the release before the newest deployment (the first test's v1.1.0)
    assert set(served_releases().values()) == {"1.0.0"}, served_releases()
    assert report(collections, "rollback")["result"] == "PASS"
    assert figures["failed"] == 0, figures
    assert_no_secret_in(jobs)
    record("AWX failure path: code rollback job (s)", job_seconds(jobs["rollback-code"]))
    record("AWX failure path: client requests ok / failed", f"{figures['ok']} / {figures['failed']}")
