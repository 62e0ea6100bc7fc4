# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Our side of the AWX job templates: playbooks/awx.yml and playbooks/vars/awx_job_templates.yml.

No AWX server exists here. The data is checked against the repository (playbooks, rollback.yml's
accepted parts, inventories) and against the survey rules AWX's API enforces; the playbook is run for
real, against a small in-memory stand-in for AWX's REST API on 127.0.0.1, to see what it declares and
that a second run changes nothing.
"""

import json
import os
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
AWX_PLAYBOOK = REPO / "playbooks" / "awx.yml"
TEMPLATES_FILE = REPO / "playbooks" / "vars" / "awx_job_templates.yml"
WORKFLOW_FILE = REPO / "playbooks" / "vars" / "awx_workflow.yml"
ROLLBACK = REPO / "playbooks" / "rollback.yml"
VALIDATE = REPO / "playbooks" / "validate.yml"
ROLLBACK_SPEC = REPO / "playbooks" / "specs" / "rollback.yml"
VENV_BIN = REPO / ".venv" / "bin"
ANSIBLE_PLAYBOOK = (
    str(VENV_BIN / "ansible-playbook") if (VENV_BIN / "ansible-playbook").exists() else "ansible-playbook"
)
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else shutil.which("python3")

# What AWX's project scan takes for a playbook (awx/main/utils/ansible.py): a .yml/.yaml file outside
# roles/, tasks/, group_vars/, host_vars/ and dot directories with a hosts/include/import_playbook line.
AWX_PLAYBOOK_LINE = re.compile(
    r"^\s*?-?\s*?(?:hosts|(ansible\.builtin\.)?include|(ansible\.builtin\.)?import_playbook):"
)
AWX_SURVEY_TYPES = {"text": str, "textarea": str, "password": str, "integer": int, "float": (int, float),
                    "multiplechoice": str, "multiselect": str}  # fmt: skip

FAKE_TOKEN = "test-token"  # noqa: S105 - what the stand-in API below accepts, not a secret
VALID_ARGS = {
    "awx_environment": "staging",
    "awx_organization": "Ops",
    "awx_project_scm_url": "https://git.example.com/ops/scaling.git",
    "awx_project_scm_branch": "release",
    "awx_machine_credential": "deploy ssh",
    "awx_vault_credential": "scaling vault",
    "awx_rollback_extra_credentials": ["route53"],
    "awx_workflow_database_name": "connect_yw_staging",
    "awx_notification_template": "ops alerts",
}


def load_yaml(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def templates():
    data = load_yaml(TEMPLATES_FILE)["awx_job_templates"]
    return {template["name"]: template for template in data}


@pytest.fixture(scope="module")
def workflow():
    return load_yaml(WORKFLOW_FILE)["awx_workflow"]


@pytest.fixture(scope="module")
def rollback_survey(templates):
    return {field["variable"]: field for field in templates["rollback"]["survey"]["spec"]}


def rollback_allowed_parts():
    """The parts rollback.yml accepts, as its input check (playbooks/validate.yml) defines them."""
    found = [
        play["vars"]["__validate_rollback_parts"]
        for play in load_yaml(VALIDATE)
        if "__validate_rollback_parts" in play.get("vars", {})
    ]
    assert len(found) == 1, "playbooks/validate.yml should define __validate_rollback_parts once"
    return found[0]


def strings_in(node):
    """Every key and string value of a parsed YAML document (comments are gone by then)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings_in(value)
    elif isinstance(node, str):
        yield node


def awx_would_list(relative_path):
    """The answer of AWX's project scan for one path: would it offer this file as a playbook?"""
    parts = Path(relative_path).parts
    if Path(relative_path).suffix not in (".yml", ".yaml"):
        return False
    skipped = {"roles", "tasks", "group_vars", "host_vars"}
    if any(part in skipped or part.startswith(".") for part in parts[:-1]):
        return False
    path = REPO / relative_path
    if not path.is_file():
        return False
    return any(AWX_PLAYBOOK_LINE.match(line) for line in path.read_text(encoding="utf-8").splitlines())


def imported_playbooks(path):
    """The playbook and every playbook it imports, recursively (FQCN ywmessaging.scaling.X included)."""
    seen, todo = [], [Path(path)]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        for play in load_yaml(current):
            target = play.get("ansible.builtin.import_playbook", play.get("import_playbook"))
            if not target:
                continue
            if target.startswith("ywmessaging.scaling."):
                todo.append(REPO / "playbooks" / (target.split(".")[-1] + ".yml"))
            else:
                todo.append(current.parent / target)
    return seen


def survey_spec_errors(survey):
    """The survey rules AWX's API checks before it stores a spec (JobTemplateSurveySpec), as a list of errors."""
    errors = []
    for field in ("name", "description"):
        if not isinstance(survey.get(field), str):
            errors.append("survey %s must be a string" % field)
    spec = survey.get("spec")
    if not isinstance(spec, list) or not spec:
        return errors + ["survey spec must be a non-empty list"]
    seen = set()
    for index, item in enumerate(spec):
        where = "question %d (%s)" % (index, item.get("variable"))
        for key, kind in (("type", str), ("question_name", str), ("variable", str), ("required", bool)):
            if not isinstance(item.get(key), kind):
                errors.append("%s: %s missing or not a %s" % (where, key, kind.__name__))
        if item.get("variable") in seen:
            errors.append("%s: variable repeated" % where)
        seen.add(item.get("variable"))
        qtype = item.get("type")
        if qtype not in AWX_SURVEY_TYPES:
            errors.append("%s: type %r is not an AWX survey type" % (where, qtype))
            continue
        default = item.get("default")
        if "default" in item and default != "" and not isinstance(default, AWX_SURVEY_TYPES[qtype]):
            errors.append("%s: default %r is not a %s answer" % (where, default, qtype))
        for key in ("min", "max"):
            if item.get(key) is not None and not isinstance(item[key], int):
                errors.append("%s: %s must be an integer" % (where, key))
        if qtype in ("multiplechoice", "multiselect"):
            choices = item.get("choices")
            if not choices:
                errors.append("%s: choices missing" % where)
                continue
            if isinstance(choices, str):
                choices = [c for c in choices.splitlines() if c.strip()]
            defaults = [d for d in str(default or "").splitlines() if d.strip()]
            if qtype == "multiplechoice" and len(defaults) > 1:
                errors.append("%s: a single choice takes one default" % where)
            if any(d not in choices for d in defaults):
                errors.append("%s: default not among the choices" % where)
    return errors


def awx_default_answers(survey):
    """The extra variables AWX passes when the operator accepts every default (JT survey defaults)."""
    answers = {}
    for item in survey["spec"]:
        default = item.get("default")
        if default is None:
            continue
        if item["type"] == "multiselect":
            # AWX keeps a multiselect default only if it already is a list; a string default is dropped.
            if isinstance(default, list):
                answers[item["variable"]] = default
        else:
            answers[item["variable"]] = default
    return answers


# ---- the data file against the repository ----


def test_the_three_templates_are_declared(templates):
    assert set(templates) == {"deploy", "verify", "rollback"}
    assert templates["deploy"]["playbook"] == "site.yml"
    assert templates["verify"]["playbook"] == "playbooks/verify.yml"
    assert templates["rollback"]["playbook"] == "rollback.yml"


@pytest.mark.parametrize("name", ["deploy", "verify", "rollback"])
def test_every_template_playbook_exists_and_awx_offers_it(templates, name):
    playbook = templates[name]["playbook"]
    assert (REPO / playbook).is_file(), "%s: %s is not in the repository" % (name, playbook)
    assert awx_would_list(playbook), "%s: AWX's project scan would not list %s as a playbook" % (name, playbook)
    for play in load_yaml(REPO / playbook):
        assert "hosts" in play or "ansible.builtin.import_playbook" in play or "import_playbook" in play


def test_rollback_parts_offers_exactly_what_rollback_yml_accepts(rollback_survey):
    allowed = rollback_allowed_parts()
    choices = rollback_survey["rollback_parts"]["choices"]
    assert rollback_survey["rollback_parts"]["type"] == "multiselect"
    assert len(choices) == len(set(choices))
    assert sorted(choices) == sorted(allowed)


def test_every_survey_variable_is_one_rollback_yml_reads(rollback_survey):
    readers = [ROLLBACK, VALIDATE] + [
        REPO / "playbooks" / p for p in ("tasks/validate_playbook.yml", "vars/dns_targets.yml")
    ]
    used = [text for path in readers for text in strings_in(load_yaml(path))]
    declared = load_yaml(ROLLBACK_SPEC)["options"]
    for variable in rollback_survey:
        assert variable in declared, "%s is not an input of rollback.yml (playbooks/specs/rollback.yml)" % variable
        pattern = re.compile(r"(?<![\w.])%s(?!\w)" % re.escape(variable))
        assert any(pattern.search(text) for text in used), "%s is not used by playbooks/rollback.yml" % variable


def test_the_survey_asks_what_the_brief_names(rollback_survey):
    assert {
        "rollback_parts",
        "rollback_code_ref",
        "rollback_dns_target",
        "rollback_dns_manual_acknowledged",
        "rollback_database_confirm",
    } <= set(rollback_survey)
    assert rollback_survey["rollback_parts"]["required"] is True
    for optional in ("rollback_code_ref", "rollback_dns_target", "rollback_database_confirm"):
        assert rollback_survey[optional]["type"] == "text"
        assert rollback_survey[optional]["required"] is False
    acknowledged = rollback_survey["rollback_dns_manual_acknowledged"]
    assert acknowledged["type"] == "multiplechoice" and acknowledged["choices"] == ["no", "yes"]
    assert "database name" in rollback_survey["rollback_database_confirm"]["question_description"]


def test_the_survey_is_one_awx_accepts(templates):
    assert survey_spec_errors(templates["rollback"]["survey"]) == []
    for name in ("deploy", "verify"):
        assert templates[name]["survey"] is None


def test_the_survey_checker_catches_what_awx_refuses():
    bad = {
        "name": "x",
        "description": "x",
        "spec": [
            {
                "variable": "a",
                "question_name": "a",
                "type": "multiselect",
                "required": True,
                "choices": ["x"],
                "default": "y",
            },
            {"variable": "a", "question_name": "a", "type": "text", "required": "no"},
            {"variable": "b", "question_name": "b", "type": "checkbox", "required": False},
        ],
    }
    errors = survey_spec_errors(bad)
    assert len(errors) == 4, errors


def test_no_default_answer_starts_a_database_restore(rollback_survey, templates):
    parts = rollback_survey["rollback_parts"]
    assert "default" not in parts or not parts["default"], "rollback_parts must not be preselected"
    assert "database" not in str(parts.get("default", ""))
    answers = awx_default_answers(templates["rollback"]["survey"])
    assert "rollback_parts" not in answers
    database_names = set()
    for main in (REPO / "inventories").glob("*/group_vars/all/main.yml"):
        database_names.add(str((load_yaml(main) or {}).get("app_db_name", "")))
    database_names.discard("")
    assert database_names, "no inventory defines app_db_name; the check below would prove nothing"
    for variable, value in answers.items():
        assert str(value) not in database_names, "%s defaults to a database name" % variable
    assert answers.get("rollback_database_confirm", "") == ""


def test_deploy_offers_check_runs_tags_and_limit_with_diff(templates):
    deploy = templates["deploy"]
    assert deploy["job_type"] == "run"
    assert deploy["ask_job_type_on_launch"] is True
    assert deploy["ask_tags_on_launch"] is True
    assert deploy["ask_limit_on_launch"] is True
    assert deploy["diff_mode"] is True


def test_changes_never_run_concurrently(templates):
    assert templates["deploy"]["allow_simultaneous"] is False
    assert templates["rollback"]["allow_simultaneous"] is False
    assert templates["rollback"]["ask_job_type_on_launch"] is False


def test_nothing_awx_runs_waits_for_a_prompt(templates):
    playbooks = {AWX_PLAYBOOK}
    for template in templates.values():
        playbooks.update(imported_playbooks(REPO / template["playbook"]))
    assert REPO / "playbooks" / "site.yml" in playbooks and REPO / "playbooks" / "verify.yml" in playbooks
    task_files = list((REPO / "roles").glob("*/tasks/*.yml")) + list((REPO / "playbooks" / "tasks").glob("*.yml"))
    assert task_files
    for path in sorted(playbooks) + task_files:
        document = load_yaml(path) or []
        for play in document if isinstance(document, list) else [document]:
            assert "vars_prompt" not in play, "%s prompts (vars_prompt)" % path
        for key_value in _pauses(document):
            args = key_value if isinstance(key_value, dict) else {}
            assert "seconds" in args or "minutes" in args, "%s pauses for an answer" % path


def _pauses(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "loop_control":
                continue  # its `pause` is the delay between loop items, never a prompt
            if key in ("pause", "ansible.builtin.pause"):
                yield value
            else:
                yield from _pauses(value)
    elif isinstance(node, list):
        for value in node:
            yield from _pauses(value)


# ---- the workflow's data ----

LINK_KINDS = ("success", "failure", "always")
# The shape the runbook asks for, spelled out: the data file must declare exactly this.
WORKFLOW_LINKS = {
    ("deploy", "success", "verify"),
    ("deploy", "failure", "rollback-code"),
    ("verify", "failure", "rollback-code"),
    ("rollback-code", "always", "approve-database-restore"),
    ("approve-database-restore", "success", "restore-database"),
}


def workflow_links(workflow):
    return {
        (n["identifier"], kind, child) for n in workflow["nodes"] for kind in LINK_KINDS for child in n.get(kind, [])
    }


def rollback_parts_of(node):
    return set((node.get("extra_data") or {}).get("rollback_parts", []))


def test_the_workflow_is_deploy_verify_and_rollback_on_failure(workflow):
    assert workflow_links(workflow) == WORKFLOW_LINKS
    nodes = {n["identifier"]: n for n in workflow["nodes"]}
    assert nodes["deploy"]["template"] == "deploy" and nodes["verify"]["template"] == "verify"
    for failed in ("deploy", "verify"):
        (target,) = nodes[failed]["failure"]
        assert nodes[target]["template"] == "rollback" and rollback_parts_of(nodes[target]) == {"code"}


def test_every_database_restore_waits_for_an_approval(workflow):
    """With the approval nodes taken out, no node that restores the database can be reached."""
    nodes = {n["identifier"]: n for n in workflow["nodes"]}
    restores = {i for i, n in nodes.items() if "database" in rollback_parts_of(n)}
    assert restores == {"restore-database"}
    assert nodes["restore-database"].get("confirm_database") is True
    children = {i for n in nodes.values() for kind in LINK_KINDS for i in n.get(kind, [])}
    todo = [i for i in nodes if i not in children]
    assert todo == ["deploy"], "deploy should be the only root"
    reached = set()
    while todo:
        current = todo.pop()
        if current in reached or "approval" in nodes[current]:
            continue
        reached.add(current)
        todo.extend(i for kind in LINK_KINDS for i in nodes[current].get(kind, []))
    assert not reached & restores


def test_every_workflow_node_runs_a_declared_template_with_answers_its_survey_takes(workflow, templates):
    identifiers = [n["identifier"] for n in workflow["nodes"]]
    assert len(identifiers) == len(set(identifiers))
    for node in workflow["nodes"]:
        assert ("template" in node) != ("approval" in node), node["identifier"]
        for kind in LINK_KINDS:
            assert set(node.get(kind, [])) <= set(identifiers), node["identifier"]
        if "approval" in node:
            assert node["approval"]["name"] and node["approval"]["description"]
            continue
        template = templates[node["template"]]
        answers = dict(node.get("extra_data") or {})
        if node.get("confirm_database"):
            answers["rollback_database_confirm"] = "a database name"
        questions = {q["variable"]: q for q in (template["survey"] or {}).get("spec", [])}
        for variable, answer in answers.items():
            where = "%s: %s" % (node["identifier"], variable)
            assert variable in questions, "%s is no survey question of %s" % (where, template["name"])
            if questions[variable]["type"] == "multiselect":
                assert isinstance(answer, list) and set(answer) <= set(questions[variable]["choices"])


# ---- the playbook ----


def run_awx_playbook(extra_vars, controller_host, *args):
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(
        CONTROLLER_HOST=controller_host,
        CONTROLLER_OAUTH_TOKEN=FAKE_TOKEN,
        CONTROLLER_VERIFY_SSL="false",
        NO_PROXY="127.0.0.1",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    for name in ("CONTROLLER_USERNAME", "CONTROLLER_PASSWORD", "TOWER_HOST", "TOWER_OAUTH_TOKEN"):
        env.pop(name, None)
    command = [ANSIBLE_PLAYBOOK, str(AWX_PLAYBOOK.relative_to(REPO)), "-i", "localhost,"]
    command += ["-e", "ansible_python_interpreter=%s" % PYTHON, "-e", json.dumps(extra_vars), *args]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    return result.returncode, result.stdout + result.stderr


def test_syntax_check_passes():
    code, output = run_awx_playbook({}, "http://127.0.0.1:9", "--syntax-check")
    assert code == 0, output


@pytest.mark.parametrize(
    "bad, named",
    [
        ({"awx_environment": "nope"}, ["awx_environment must be one of production, staging, lab"]),
        ({"awx_organization": ""}, ["awx_organization"]),
        ({"awx_project_scm_url": " "}, ["awx_project_scm_url"]),
        (
            {"awx_environment": "prod", "awx_machine_credential": "", "awx_rollback_extra_credentials": "route53"},
            ["awx_environment", "awx_machine_credential", "awx_rollback_extra_credentials"],
        ),
        (
            {
                "awx_workflow_database_name": " ",
                "awx_workflow_approval_timeout": "soon",
                "awx_notification_template": 3,
            },
            ["awx_workflow_database_name", "awx_workflow_approval_timeout", "awx_notification_template"],
        ),
        ({"awx_workflow_approval_timeout": -1}, ["awx_workflow_approval_timeout"]),
    ],
)
def test_bad_input_is_refused_before_awx_is_contacted(fake_awx, bad, named):
    fake_awx.requests.clear()
    code, output = run_awx_playbook(dict(VALID_ARGS, **bad), fake_awx.base_url)
    assert code != 0, output
    assert "Refuse bad awx_ variables" in output and "Bad variables:" in output, output
    for text in named:
        assert text in output, output
    for good in set(VALID_ARGS) - set(bad):
        assert "%s must" % good not in output, output
    assert "TASK [Declare the project" not in output, output
    assert fake_awx.requests == [], "the playbook talked to AWX before refusing its input"


# ---- against a stand-in for AWX's API on 127.0.0.1 ----


class FakeAWX:
    """Just enough of AWX's /api/v2/ for the awx.awx modules playbooks/awx.yml uses, in memory.

    It refuses what AWX refuses and we could get wrong: a job template playbook AWX's project scan would
    not list, a survey AWX's API would not store, an SCM inventory path missing from the project.
    """

    TYPES = {
        "organizations": "organization",
        "credentials": "credential",
        "execution_environments": "execution_environment",
        "projects": "project",
        "project_updates": "project_update",
        "inventories": "inventory",
        "inventory_sources": "inventory_source",
        "job_templates": "job_template",
        "workflow_job_templates": "workflow_job_template",
        "workflow_job_template_nodes": "workflow_job_template_node",
        "workflow_approval_templates": "workflow_approval_template",
        "notification_templates": "notification_template",
    }
    # What /api/v2/unified_job_templates/ lists: everything a workflow node can run.
    UNIFIED = (
        "projects",
        "inventory_sources",
        "job_templates",
        "workflow_job_templates",
        "workflow_approval_templates",
    )
    # Related lists: where their members live.
    ASSOCIATIONS = {
        "credentials": "credentials",
        "notification_templates_started": "notification_templates",
        "notification_templates_success": "notification_templates",
        "notification_templates_error": "notification_templates",
        "notification_templates_approvals": "notification_templates",
        "success_nodes": "workflow_job_template_nodes",
        "failure_nodes": "workflow_job_template_nodes",
        "always_nodes": "workflow_job_template_nodes",
    }

    def __init__(self):
        self.objects = {collection: {} for collection in self.TYPES}
        self.surveys = {}
        self.associations = {}
        self.requests = []
        self.last_id = 0
        self.lock = threading.Lock()
        self.add("organizations", name="Ops")
        for name in ("deploy ssh", "scaling vault", "route53"):
            self.add("credentials", name=name, organization=1)
        self.add("notification_templates", name="ops alerts", organization=1)

    def add(self, collection, **fields):
        self.last_id += 1
        oid = self.last_id
        url = "/api/v2/%s/%d/" % (collection, oid)
        related = {"survey_spec": url + "survey_spec/", "credentials": url + "credentials/", "update": url + "update/"}
        obj = dict(fields, id=oid, type=self.TYPES[collection], url=url, related=related, summary_fields={})
        if collection == "job_templates" and "organization" not in fields:
            obj["organization"] = self.objects["projects"].get(fields.get("project"), {}).get("organization")
        self.objects[collection][oid] = obj
        self.relate(obj)
        return obj

    def relate(self, obj):
        """A node's related URL of what it runs (the awx.awx module reads an approval's template there)."""
        if obj["type"] == "workflow_job_template_node":
            ujt = self.unified(obj.get("unified_job_template"))
            if ujt is not None:
                obj["related"]["unified_job_template"] = ujt["url"]

    def unified(self, oid):
        for collection in self.UNIFIED:
            if oid in self.objects[collection]:
                return self.objects[collection][oid]
        return None

    def node_prompt_errors(self, node):
        """What AWX refuses in a node's extra_data for a job template: variables it does not prompt for
        (no survey question, no prompt on launch) and survey answers outside the choices."""
        template = self.objects["job_templates"].get(node.get("unified_job_template"))
        extra = node.get("extra_data") or {}
        if template is None or not extra:
            return []
        questions = {q["variable"]: q for q in self.surveys.get(template["id"], {}).get("spec", [])}
        if template.get("ask_variables_on_launch"):
            return []
        errors = []
        for variable, answer in extra.items():
            question = questions.get(variable) if template.get("survey_enabled") else None
            if question is None:
                errors.append("Variables %s are not allowed on launch." % variable)
            elif question["type"] == "multiselect":
                if not isinstance(answer, list) or not set(answer) <= set(question["choices"]):
                    errors.append("%s: %r is not a list of the choices" % (variable, answer))
            elif question["type"] == "multiplechoice" and answer not in question["choices"]:
                errors.append("%s: %r is not one of the choices" % (variable, answer))
            elif question["type"] in ("text", "textarea", "password") and not isinstance(answer, str):
                errors.append("%s: %r is not text" % (variable, answer))
        return errors

    def link_error(self, parent, kind, child):
        """AWX's rules for a link: same workflow, no cycle, and a node has either always links or others."""
        if child is None or child["workflow_job_template"] != parent["workflow_job_template"]:
            return "node of another workflow"
        kinds = {k for k in ("success_nodes", "failure_nodes", "always_nodes") if self.links(parent, k)} | {kind}
        if "always_nodes" in kinds and len(kinds) > 1:
            return "Cannot associate always nodes with success or failure nodes."
        todo, seen = [child["id"]], set()
        while todo:
            current = todo.pop()
            if current == parent["id"]:
                return "Cycle detected."
            if current not in seen:
                seen.add(current)
                for k in ("success_nodes", "failure_nodes", "always_nodes"):
                    todo.extend(self.associations.get(("workflow_job_template_nodes", current, k), []))
        return None

    def links(self, node, kind):
        return self.associations.get(("workflow_job_template_nodes", node["id"], kind), [])

    def finished_sync(self, project):
        """A project update that has already succeeded (AWX syncs on create and on request)."""
        return self.add(
            "project_updates",
            name=project["name"],
            status="successful",
            failed=False,
            finished="now",
            scm_revision=project["scm_revision"],
        )

    def named(self, collection):
        return {obj["name"]: obj for obj in self.objects[collection].values()}

    def find(self, collection, query):
        found = []
        for obj in self.objects[collection].values():
            if all(str(obj.get(key)) == value for key, value in query.items() if not key.startswith("or__")):
                found.append(obj)
        return found

    def lookup(self, collection, ident):
        if ident.isdigit():
            return self.objects[collection].get(int(ident))
        if "++" in ident and collection == "inventories":
            name, organization = unquote(ident).split("++", 1)
            org_ids = [o["id"] for o in self.objects["organizations"].values() if o["name"] == organization]
            matches = [
                o for o in self.objects[collection].values() if o["name"] == name and o.get("organization") in org_ids
            ]
            return matches[0] if len(matches) == 1 else None
        return None

    def check(self, collection, data, existing=None):
        merged = dict(existing or {}, **data)
        if collection == "job_templates":
            project = self.objects["projects"].get(merged.get("project"))
            if project is None or merged.get("inventory") not in self.objects["inventories"]:
                return {"project": ["a project and an inventory are required"]}
            if not awx_would_list(merged.get("playbook", "")):
                return {"playbook": ["Playbook not found for project."]}
            if merged.get("job_type") not in ("run", "check"):
                return {"job_type": ["not a valid choice"]}
        if collection == "workflow_job_template_nodes":
            if merged.get("workflow_job_template") not in self.objects["workflow_job_templates"]:
                return {"workflow_job_template": ["required"]}
            if "unified_job_template" in merged and self.unified(merged["unified_job_template"]) is None:
                return {"unified_job_template": ["not found"]}
            same = [
                n for n in self.objects[collection].values()
                if n["workflow_job_template"] == merged["workflow_job_template"]
                and n["identifier"] == merged.get("identifier") and n is not existing
            ]  # fmt: skip
            if same:
                return {"__all__": ["identifier must be unique within the workflow"]}
            errors = self.node_prompt_errors(merged)
            if errors:
                return {"extra_data": errors}
        if collection == "inventory_sources" and merged.get("source") == "scm":
            if merged.get("source_project") not in self.objects["projects"]:
                return {"source_project": ["required for scm"]}
            if not (REPO / merged.get("source_path", "")).exists():
                return {"source_path": ["not in the project"]}
        return None

    def handle(self, method, path, query, body):
        parts = [unquote(p) for p in path.strip("/").split("/")][2:]  # after api/v2
        collection = parts[0] if parts else ""
        if collection == "unified_job_templates" and len(parts) == 1 and method == "GET":
            results = [o for c in self.UNIFIED for o in self.find(c, query)]
            return 200, {"count": len(results), "next": None, "previous": None, "results": results}
        if collection not in self.TYPES:
            return 404, {"detail": "Not found."}
        if len(parts) == 1 and method == "GET":
            results = self.find(collection, query)
            return 200, {"count": len(results), "next": None, "previous": None, "results": results}
        if len(parts) == 1 and method == "POST":
            error = self.check(collection, body)
            if error:
                return 400, error
            obj = self.add(collection, **body)
            if collection == "projects":
                obj["scm_revision"] = "0" * 40
                update = self.finished_sync(obj)
                # AWX starts a sync when a project is created; the answer names it as the current update.
                return 201, dict(obj, summary_fields={"current_update": {"id": update["id"]}})
            return 201, obj
        obj = self.lookup(collection, parts[1])
        if obj is None:
            return 404, {"detail": "Not found."}
        if len(parts) == 2 and method == "GET":
            return 200, obj
        if len(parts) == 2 and method == "PATCH":
            error = self.check(collection, body, obj)
            if error:
                return 400, error
            obj.update(body)
            self.relate(obj)
            return 200, obj
        related = parts[2]
        if related == "survey_spec" and method == "GET":
            return 200, self.surveys.get(obj["id"], {})
        if related == "survey_spec" and method == "POST":
            errors = survey_spec_errors(body)
            if errors:
                return 400, {"error": "; ".join(errors)}
            self.surveys[obj["id"]] = body
            return 200, {}
        if related in self.ASSOCIATIONS:
            members = self.objects[self.ASSOCIATIONS[related]]
            key = (collection, obj["id"], related)
            ids = self.associations.setdefault(key, [])
            if method == "GET":
                results = [members[i] for i in ids]
                return 200, {"count": len(results), "next": None, "previous": None, "results": results}
            if body.get("disassociate"):
                ids.remove(body["id"])
                return 204, None
            if body["id"] not in members:
                return 400, {"msg": "no such %s" % self.ASSOCIATIONS[related]}
            if collection == "workflow_job_template_nodes":
                error = self.link_error(obj, related, members.get(body["id"]))
                if error:
                    return 400, {"Error": error}
            ids.append(body["id"])
            return 204, None
        if related == "create_approval_template" and method == "POST" and collection == "workflow_job_template_nodes":
            fields = {k: body[k] for k in ("name", "description", "timeout") if k in body}
            if obj.get("unified_job_template") is not None or not fields.get("name"):
                return 400, {"detail": "the node runs something already, or the approval has no name"}
            approval = self.add("workflow_approval_templates", **fields)
            obj["unified_job_template"] = approval["id"]
            self.relate(obj)
            return 201, approval
        if related == "update" and method == "POST" and collection == "projects":
            update = self.finished_sync(obj)
            return 202, {"id": update["id"], "url": update["url"], "project_update": update["id"]}
        return 405, {"detail": "Method not allowed."}


@pytest.fixture(scope="module")
def fake_awx():
    awx = FakeAWX()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            with awx.lock:
                awx.requests.append((self.command, split.path, body))
                if self.headers.get("Authorization") != "Bearer " + FAKE_TOKEN:
                    status, payload = 401, {"detail": "Authentication credentials were not provided."}
                else:
                    status, payload = awx.handle(self.command, split.path, dict(parse_qsl(split.query)), body)
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-API-Product-Name", "AWX")
            self.send_header("X-API-Product-Version", "24.6.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    awx.base_url = "http://127.0.0.1:%d" % server.server_address[1]
    yield awx
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def declared(fake_awx):
    """Run the playbook twice against the stand-in; keep both outputs and the second run's requests.

    The second run names no notification template: it must leave the workflow's notifications alone."""
    fake_awx.requests.clear()
    first = run_awx_playbook(VALID_ARGS, fake_awx.base_url)
    split = len(fake_awx.requests)
    second = run_awx_playbook(dict(VALID_ARGS, awx_notification_template=""), fake_awx.base_url)
    return fake_awx, first, second, fake_awx.requests[split:]


def test_first_run_declares_project_inventory_and_templates(declared, templates):
    awx, (code, output), _second, _requests = declared
    assert code == 0, output
    prefix = "ywmessaging.scaling staging"
    project = awx.named("projects")[prefix]
    assert project["scm_type"] == "git"
    assert project["scm_url"] == VALID_ARGS["awx_project_scm_url"]
    assert project["scm_branch"] == "release"
    assert project["organization"] == 1
    inventory = awx.named("inventories")[prefix]
    assert inventory["organization"] == 1
    (source,) = awx.objects["inventory_sources"].values()
    assert source["source"] == "scm"
    assert source["source_project"] == project["id"]
    assert source["source_path"] == "inventories/staging/"
    assert source["inventory"] == inventory["id"]
    assert source["overwrite"] is True and source["update_on_launch"] is True

    jts = awx.named("job_templates")
    assert set(jts) == {"%s %s" % (prefix, name) for name in templates}
    credentials = {c["name"]: c["id"] for c in awx.objects["credentials"].values()}
    for name, template in templates.items():
        jt = jts["%s %s" % (prefix, name)]
        assert jt["playbook"] == template["playbook"]
        assert jt["project"] == project["id"] and jt["inventory"] == inventory["id"]
        for flag in ("job_type", "diff_mode", "allow_simultaneous", "ask_job_type_on_launch", "ask_tags_on_launch",
                     "ask_limit_on_launch"):  # fmt: skip
            assert jt[flag] == template[flag], (name, flag)
        assert jt["ask_variables_on_launch"] is False
        assert jt["survey_enabled"] is (template["survey"] is not None)
        expected = ["deploy ssh", "scaling vault"] + (["route53"] if name == "rollback" else [])
        attached = awx.associations[("job_templates", jt["id"], "credentials")]
        assert sorted(attached) == sorted(credentials[c] for c in expected), name
    assert awx.surveys[jts[prefix + " rollback"]["id"]] == templates["rollback"]["survey"]
    assert set(awx.surveys) == {jts[prefix + " rollback"]["id"]}


def test_second_run_changes_nothing(declared):
    awx, _first, (code, output), requests = declared
    assert code == 0, output
    recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+).*failed=(\d+)", output)
    assert recap, output
    assert recap.group(2) == "0", output
    assert len(awx.objects["job_templates"]) == 3 and len(awx.objects["projects"]) == 1
    assert len(awx.objects["workflow_job_templates"]) == 1 and len(awx.objects["workflow_approval_templates"]) == 1
    assert len(awx.objects["workflow_job_template_nodes"]) == 5
    # Without awx_notification_template nothing about notifications is looked up or sent.
    assert requests and not [r for r in requests if "notification_templates" in r[1]], requests


def test_first_run_declares_the_workflow(declared, workflow):
    awx, (code, output), _second, _requests = declared
    assert code == 0, output
    prefix = "ywmessaging.scaling staging"
    wfjt = awx.named("workflow_job_templates")[prefix + " deploy workflow"]
    assert wfjt["organization"] == 1 and wfjt["allow_simultaneous"] is False
    assert wfjt["ask_variables_on_launch"] is False and wfjt["survey_enabled"] is False
    nodes = {n["identifier"]: n for n in awx.objects["workflow_job_template_nodes"].values()}
    assert set(nodes) == {n["identifier"] for n in workflow["nodes"]}
    assert {n["workflow_job_template"] for n in nodes.values()} == {wfjt["id"]}
    jts = awx.named("job_templates")
    for node in workflow["nodes"]:
        declared_node = nodes[node["identifier"]]
        if "template" in node:
            assert declared_node["unified_job_template"] == jts["%s %s" % (prefix, node["template"])]["id"], node
        else:
            approval = awx.objects["workflow_approval_templates"][declared_node["unified_job_template"]]
            assert approval["name"] == "%s %s" % (prefix, node["approval"]["name"])
            assert approval["timeout"] == 14400 and approval["description"] == node["approval"]["description"]
    assert nodes["rollback-code"]["extra_data"] == {"rollback_parts": ["code"]}
    assert nodes["restore-database"]["extra_data"] == {
        "rollback_parts": ["database"],
        "rollback_database_confirm": VALID_ARGS["awx_workflow_database_name"],
    }
    for plain in ("deploy", "verify", "approve-database-restore"):
        assert not nodes[plain].get("extra_data"), plain
    by_id = {n["id"]: i for i, n in nodes.items()}
    links = {
        (by_id[node_id], kind.replace("_nodes", ""), by_id[child])
        for (collection, node_id, kind), children in awx.associations.items()
        if collection == "workflow_job_template_nodes"
        for child in children
    }
    assert links == WORKFLOW_LINKS
    alerts = awx.named("notification_templates")["ops alerts"]["id"]
    notified = {k[2]: v for k, v in awx.associations.items() if k[:2] == ("workflow_job_templates", wfjt["id"])}
    assert notified == {"notification_templates_error": [alerts], "notification_templates_approvals": [alerts]}


def test_the_stand_in_refuses_what_awx_refuses(fake_awx):
    """The checks above would prove nothing if the stand-in accepted anything."""
    project = fake_awx.add("projects", name="probe", organization=1)
    inventory = fake_awx.add("inventories", name="probe", organization=1)
    fields = {"name": "probe", "project": project["id"], "inventory": inventory["id"], "job_type": "run"}
    for playbook in ("playbooks/tasks/lb_drain.yml", "no-such.yml"):
        status, answer = fake_awx.handle("POST", "/api/v2/job_templates/", {}, dict(fields, playbook=playbook))
        assert (status, answer) == (400, {"playbook": ["Playbook not found for project."]}), playbook
    status, jt = fake_awx.handle("POST", "/api/v2/job_templates/", {}, dict(fields, playbook="site.yml"))
    assert status == 201
    bad_survey = {"name": "s", "description": "", "spec": [{"variable": "v", "type": "multiselect", "required": True}]}
    status, answer = fake_awx.handle("POST", jt["url"] + "survey_spec/", {}, bad_survey)
    assert status == 400 and "choices missing" in answer["error"]
    assert jt["id"] not in fake_awx.surveys
    # Workflows: answers a template does not ask for, a cycle, always links mixed with others.
    wfjt = fake_awx.add("workflow_job_templates", name="probe", organization=1)
    node = {"workflow_job_template": wfjt["id"], "unified_job_template": jt["id"]}
    status, answer = fake_awx.handle(
        "POST", "/api/v2/workflow_job_template_nodes/", {}, dict(node, identifier="a", extra_data={"x": 1})
    )
    assert status == 400 and "not allowed on launch" in str(answer)
    first, second = (fake_awx.handle("POST", "/api/v2/workflow_job_template_nodes/", {}, dict(node, identifier=i))[1]
                     for i in ("a", "b"))  # fmt: skip
    assert fake_awx.handle("POST", first["url"] + "success_nodes/", {}, {"id": second["id"]})[0] == 204
    status, answer = fake_awx.handle("POST", second["url"] + "failure_nodes/", {}, {"id": first["id"]})
    assert (status, answer) == (400, {"Error": "Cycle detected."})
    status, answer = fake_awx.handle("POST", first["url"] + "always_nodes/", {}, {"id": second["id"]})
    assert status == 400 and "always" in answer["Error"]
