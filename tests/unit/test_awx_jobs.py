# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/tooling/awx_jobs.py's pure parts, on this repository's own definitions: what a job of each
template gets (extra variables, command line) and which nodes of the workflow run after what."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tooling" / "awx_jobs.py"
_spec = importlib.util.spec_from_file_location("awx_jobs", SCRIPT)
awx_jobs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(awx_jobs)

TEMPLATES, WORKFLOW = awx_jobs.definitions()


def test_a_survey_job_gets_every_default_then_the_answers():
    # AWX fills in each question's default (an empty text answer included: it wins over the inventory)
    got = awx_jobs.extra_vars(TEMPLATES["rollback"], {"rollback_parts": ["code"]}, job_id=7)
    assert got["rollback_parts"] == ["code"]
    assert got["rollback_dns_manual_acknowledged"] == "no"
    assert got["rollback_dns_target"] == ""
    assert got["awx_job_id"] == 7 and got["awx_job_template_name"] == "rollback"


def test_an_answer_to_a_question_the_survey_does_not_ask_is_refused():
    with pytest.raises(ValueError, match="not a survey question of rollback"):
        awx_jobs.extra_vars(TEMPLATES["rollback"], {"rollback_postgresql_host": "db"})
    with pytest.raises(ValueError, match="not a survey question of deploy"):
        awx_jobs.extra_vars(TEMPLATES["deploy"], {"rollback_parts": ["code"]})


def test_the_command_line_follows_the_template_and_what_the_launch_may_set():
    assert awx_jobs.cmdline(TEMPLATES["deploy"]) == ["--diff"]
    assert awx_jobs.cmdline(TEMPLATES["deploy"], job_type="check", tags="lb", limit="lb-1") == [
        "--check", "--diff", "--tags", "lb", "--limit", "lb-1",
    ]  # fmt: skip
    assert awx_jobs.cmdline(TEMPLATES["verify"]) == []
    for launch in ({"job_type": "check"}, {"tags": "dns"}, {"limit": "backend-1"}):
        with pytest.raises(ValueError, match="rollback does not ask for"):
            awx_jobs.cmdline(TEMPLATES["rollback"], **launch)


def run_with(outcomes):
    """A workflow run where each template node ends as `outcomes` says; returns (states, run order)."""
    ran = []

    def run_node(node):
        ran.append(node["identifier"])
        return outcomes[node["identifier"]]

    return awx_jobs.walk(WORKFLOW, run_node), ran


def test_a_good_deploy_is_verified_and_nothing_is_rolled_back():
    states, ran = run_with({"deploy": "successful", "verify": "successful"})
    assert ran == ["deploy", "verify"]
    assert states["rollback-code"] == states["approve-database-restore"] == states["restore-database"] == "dnr"


def test_a_failed_deploy_rolls_the_code_back_and_waits_for_a_person_before_any_restore():
    states, ran = run_with({"deploy": "failed", "rollback-code": "successful"})
    assert ran == ["deploy", "rollback-code"]
    assert states["verify"] == "dnr"
    assert states["approve-database-restore"] == "pending"
    assert states["restore-database"] == "waiting"


def test_a_failed_verification_rolls_back_once_even_when_the_rollback_fails():
    states, ran = run_with({"deploy": "successful", "verify": "failed", "rollback-code": "failed"})
    assert ran == ["deploy", "verify", "rollback-code"]
    assert states["approve-database-restore"] == "pending"  # `always`: a person looks either way
