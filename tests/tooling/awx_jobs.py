# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AWX side of a job, without AWX: what the tests need to run this repository's job templates and
workflow (playbooks/vars/awx_job_templates.yml, awx_workflow.yml) the way AWX runs them.

- `checkout` and `project_sync`: what a project update leaves - the tracked files, and the collections
  `collections/requirements.yml` names installed from that checkout into a cache.
- `launch`: one job - the extra variables (AWX's own, the survey's defaults, the answers), the command
  line (check mode, diff, tags, limit, only where the template lets the launch set them) and the
  environment, written as an ansible-runner private data directory from the template's definition,
  then `ansible-runner run` on it, as AWX's task runner does. Returns the job's status and artifacts.
- `walk`: a workflow's nodes in AWX's order - a node runs once all its parents are done and one edge
  into it (success, failure, always) holds; an approval node stops its branch, pending.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VARS = REPO / "playbooks" / "vars"
VENV_BIN = REPO / ".venv" / "bin"


def definitions():
    """(templates by name, the workflow), as playbooks/awx.yml reads them."""
    with open(VARS / "awx_job_templates.yml", encoding="utf-8") as fh:
        templates = {t["name"]: t for t in yaml.safe_load(fh)["awx_job_templates"]}
    with open(VARS / "awx_workflow.yml", encoding="utf-8") as fh:
        return templates, yaml.safe_load(fh)["awx_workflow"]


def environment(**extra):
    """A job's environment: nothing of ours (no ANSIBLE_*, no proxy), the toolchain on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and not k.lower().endswith("_proxy")}
    env["PATH"] = str(VENV_BIN) + os.pathsep + env.get("PATH", "")
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", **extra)
    return env


def checkout(dest):
    """What AWX checks out: the tracked (and to-be-tracked) files, nothing git ignores."""
    dest = Path(dest)
    files = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    for rel in filter(None, files):
        src = REPO / rel.decode()
        if not os.path.lexists(src):
            continue  # deleted in the working tree, not yet committed
        target = dest / rel.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    return dest


def project_sync(project, cache):
    """AWX's project update step for collections: the same command, from the checkout's root."""
    argv = [str(VENV_BIN / "ansible-galaxy"), "collection", "install", "-r", "collections/requirements.yml",
            "--collections-path", str(cache)]  # fmt: skip
    # No Galaxy here: a request for anything would fail at once instead of hanging on the network.
    env = environment(ANSIBLE_COLLECTIONS_PATH=str(cache), ANSIBLE_GALAXY_SERVER="http://127.0.0.1:9/")
    return subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False)


def extra_vars(template, answers=None, job_id=1):
    """What AWX passes as extra variables: its awx_* variables, every survey default, then the answers."""
    out = {"awx_job_id": job_id, "awx_job_template_name": template["name"], "awx_job_launch_type": "workflow"}
    survey = template.get("survey") or {"spec": []}
    asked = {question["variable"]: question for question in survey["spec"]}
    for variable, question in asked.items():
        if question.get("default") is not None:
            out[variable] = question["default"]
    for variable, value in (answers or {}).items():
        if variable not in asked:
            raise ValueError(f"{variable} is not a survey question of {template['name']}: AWX would not pass it")
        out[variable] = value
    return out


def cmdline(template, job_type=None, tags=None, limit=None):
    """ansible-playbook's arguments AWX adds for the template and what the launch may set."""
    for name, value, allowed in (
        ("job_type", job_type, "ask_job_type_on_launch"),
        ("tags", tags, "ask_tags_on_launch"),
        ("limit", limit, "ask_limit_on_launch"),
    ):
        if value is not None and not template.get(allowed):
            raise ValueError(f"{template['name']} does not ask for {name} on launch")
    args = []
    if (job_type or template["job_type"]) == "check":
        args.append("--check")
    if template.get("diff_mode"):
        args.append("--diff")
    if tags:
        args += ["--tags", tags]
    if limit:
        args += ["--limit", limit]
    return args


class Job:
    """One finished job: status (successful, failed), rc, stdout and the job events."""

    def __init__(self, artifacts):
        self.artifacts = Path(artifacts)
        self.status = (self.artifacts / "status").read_text(encoding="utf-8").strip()
        self.rc = int((self.artifacts / "rc").read_text(encoding="utf-8").strip())
        self.stdout = (self.artifacts / "stdout").read_text(encoding="utf-8", errors="replace")
        self.events = [
            json.loads(path.read_text(encoding="utf-8"))
            for path in sorted((self.artifacts / "job_events").glob("*.json"), key=lambda p: int(p.name.split("-")[0]))
        ]

    def events_text(self):
        return "\n".join(json.dumps(event) for event in self.events)

    def recap(self):
        """{host: {ok, changed, failures, ...}} from the playbook_on_stats event."""
        stats = [e["event_data"] for e in self.events if e.get("event") == "playbook_on_stats"]
        if not stats:
            return {}
        keys = ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")
        hosts = {h for key in keys for h in (stats[-1].get(key) or {})}
        return {h: {key: (stats[-1].get(key) or {}).get(h, 0) for key in keys} for h in sorted(hosts)}


def launch(
    template, pdd, project, inventory, collections, answers=None, job_type=None, tags=None, limit=None, job_id=1
):
    """Write the private data directory for one job of `template` and run it with ansible-runner."""
    pdd = Path(pdd)
    (pdd / "env").mkdir(parents=True, exist_ok=True)
    (pdd / "env" / "extravars").write_text(json.dumps(extra_vars(template, answers, job_id)), encoding="utf-8")
    (pdd / "env" / "cmdline").write_text(" ".join(cmdline(template, job_type, tags, limit)), encoding="utf-8")
    # AWX: the project's synced collections first, then the execution environment's
    (pdd / "env" / "envvars").write_text(json.dumps({"ANSIBLE_COLLECTIONS_PATH": str(collections)}), encoding="utf-8")
    if not (pdd / "project").exists():
        (pdd / "project").symlink_to(Path(project).resolve(), target_is_directory=True)
    if not (pdd / "inventory").exists():
        (pdd / "inventory").symlink_to(Path(inventory).resolve(), target_is_directory=True)
    ident = f"{job_id}-{template['name']}"
    argv = [str(VENV_BIN / "ansible-runner"), "run", str(pdd), "--playbook", template["playbook"], "--ident", ident]
    proc = subprocess.run(argv, env=environment(), capture_output=True, text=True, timeout=3600, check=False)
    artifacts = pdd / "artifacts" / ident
    if not (artifacts / "status").exists():
        raise RuntimeError(f"ansible-runner left no status for {ident}: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    return Job(artifacts)


EDGE_HOLDS = {"success": ("successful",), "failure": ("failed",), "always": ("successful", "failed")}


def walk(workflow, run_node):
    """Run a workflow's nodes in AWX's order; `run_node(node)` runs a template node and returns its status.

    Returns {identifier: status} for every node: successful or failed (ran), pending (an approval, which
    a person answers), waiting (after a pending approval) or dnr (do not run: no edge into it holds)."""
    nodes = workflow["nodes"]
    parents = {node["identifier"]: [] for node in nodes}
    for node in nodes:
        for kind in ("success", "failure", "always"):
            for child in node.get(kind) or []:
                parents[child].append((node["identifier"], kind))
    state = {}
    progressed = True
    while progressed and len(state) < len(nodes):
        progressed = False
        for node in nodes:
            name = node["identifier"]
            if name in state or any(parent not in state for parent, _kind in parents[name]):
                continue
            progressed = True
            edges = parents[name]
            if any(state[parent] in ("pending", "waiting") for parent, _kind in edges):
                state[name] = "waiting"
            elif edges and not any(state[parent] in EDGE_HOLDS[kind] for parent, kind in edges):
                state[name] = "dnr"
            elif "approval" in node:
                state[name] = "pending"
            else:
                state[name] = run_node(node)
    return state
