# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository as an AWX project: what a project sync installs, and the execution environment.

AWX clones the repository and, from the checkout's root, runs
`ansible-galaxy collection install -r collections/requirements.yml --collections-path <cache>` with
ANSIBLE_COLLECTIONS_PATH(S) set to that cache; jobs then find collections there first. These tests do
exactly that on a copy of the tracked files (no ./run setup, no .collections link, no Galaxy server),
then run the root site.yml and rollback.yml with only that cache. They also build the execution
environment's context with ansible-builder (the image itself needs a registry and is not built here).
"""

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[3]
VENV_BIN = REPO / ".venv" / "bin"
REQUIREMENTS = REPO / "collections" / "requirements.yml"
EE_FILE = REPO / "execution-environment.yml"
EE_META = REPO / "meta" / "execution-environment.yml"
# The first play of each root playbook: seeing it proves ywmessaging.scaling.<name> resolved.
FIRST_PLAY = {"site.yml": "Validate - every input, before any host is changed", "rollback.yml": "Rollback - begin"}
# The development toolchain (root requirements.txt) must never reach an execution environment.
DEV_TOOLS = ("molecule", "pytest", "ansible-lint", "yamllint", "ruff", "ansible-builder", "antsibull")
SELF = "ywmessaging.scaling"
_spec = importlib.util.spec_from_file_location("awx_jobs", REPO / "tests" / "tooling" / "awx_jobs.py")
awx_jobs = importlib.util.module_from_spec(_spec)  # checkout, project sync, a job's environment
_spec.loader.exec_module(awx_jobs)


def tool(name):
    path = VENV_BIN / name
    return str(path) if path.exists() else (shutil.which(name) or name)


def run(argv, cwd, **env):
    """A command as AWX would run it: no ANSIBLE_* from our environment, no proxy, the given extras."""
    return subprocess.run(
        argv, cwd=cwd, env=awx_jobs.environment(**env), capture_output=True, text=True, timeout=180, check=False
    )


def load_yaml(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def galaxy_dependencies():
    return load_yaml(REPO / "galaxy.yml")["dependencies"]


def pinned(entries):
    """{name: version} of a requirements list, without this collection's own entry."""
    return {entry["name"]: str(entry["version"]) for entry in entries if entry["name"] != SELF}


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """What AWX checks out: the tracked (and to-be-tracked) files, nothing git ignores."""
    dest = awx_jobs.checkout(tmp_path_factory.mktemp("project") / "checkout")
    assert not (dest / ".collections").exists() and not (dest / ".venv").exists()
    return dest


@pytest.fixture(scope="module")
def project_sync(clone, tmp_path_factory):
    """AWX's project update step for collections: the same command, from the checkout's root."""
    cache = tmp_path_factory.mktemp("awx_cache") / "requirements_collections"
    return cache, awx_jobs.project_sync(clone, cache)


def test_the_project_sync_installs_the_collection_from_the_checkout(project_sync):
    cache, proc = project_sync
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "%s:" % SELF in output and "was installed successfully" in output, output
    installed = cache / "ansible_collections" / "ywmessaging" / "scaling"
    manifest = json.loads((installed / "MANIFEST.json").read_text(encoding="utf-8"))
    assert manifest["collection_info"]["dependencies"] == galaxy_dependencies()
    # Built like a release (galaxy.yml's build_ignore applies), with the execution environment metadata.
    for shipped in ("playbooks/site.yml", "playbooks/rollback.yml", "meta/execution-environment.yml",
                    "meta/ee-requirements.txt", "meta/ee-bindep.txt"):  # fmt: skip
        assert (installed / shipped).is_file(), shipped
    for local in (".venv", ".collections", ".git"):
        assert not (installed / local).exists(), local


def test_dependencies_already_present_need_no_galaxy(project_sync):
    """The pinned `ansible` package carries every dependency at the pinned version: nothing is fetched.
    In AWX, whatever the execution environment lacks comes from the organization's Galaxy server."""
    _cache, proc = project_sync
    for name, version in pinned(load_yaml(REQUIREMENTS)["collections"]).items():
        assert "'%s:%s' is already installed, skipping." % (name, version) in proc.stdout, proc.stdout


@pytest.mark.parametrize("playbook", sorted(FIRST_PLAY))
def test_root_playbooks_resolve_from_the_synced_collections_only(clone, project_sync, playbook):
    cache, proc = project_sync
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = run(
        [tool("ansible-playbook"), playbook, "--list-tasks", "-i", "localhost,"],
        cwd=clone,
        ANSIBLE_COLLECTIONS_PATH=str(cache),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert FIRST_PLAY[playbook] in result.stdout, result.stdout
    assert not (clone / ".collections").exists()


def test_without_the_sync_the_root_playbooks_do_not_resolve(clone, tmp_path):
    """The control: the checkout alone (the git-ignored .collections link absent) cannot run them."""
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(
        [tool("ansible-playbook"), "site.yml", "--list-tasks", "-i", "localhost,"],
        cwd=clone,
        ANSIBLE_COLLECTIONS_PATH=str(empty),
    )
    assert result.returncode != 0, result.stdout
    assert "ywmessaging.scaling.site" in result.stdout + result.stderr


# ---- one pin set: collections/requirements.yml, execution-environment.yml, galaxy.yml ----


def test_the_requirements_name_this_collection_as_the_checkout():
    entries = load_yaml(REQUIREMENTS)["collections"]
    (own,) = [entry for entry in entries if entry["name"] == SELF]
    assert own == {"name": SELF, "type": "dir", "source": "."}


def test_requirements_and_execution_environment_pin_the_same_collections():
    from_requirements = pinned(load_yaml(REQUIREMENTS)["collections"])
    from_ee = pinned(load_yaml(EE_FILE)["dependencies"]["galaxy"]["collections"])
    assert from_requirements == from_ee
    dependencies = galaxy_dependencies()
    assert set(from_requirements) == set(dependencies), "pin exactly galaxy.yml's dependencies"
    for name, version in from_requirements.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), "%s: pin an exact version, not %r" % (name, version)
        assert Version(version) in SpecifierSet(dependencies[name].replace(" ", "")), (name, version)


def test_the_pins_are_the_versions_the_tests_run_against():
    proc = run([tool("ansible-galaxy"), "collection", "list", "--format", "json"], cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    found = {}
    for collections in json.loads(proc.stdout).values():
        for name, info in collections.items():
            found.setdefault(name, info["version"])
    for name, version in pinned(load_yaml(REQUIREMENTS)["collections"]).items():
        have = found.get(name)
        assert have == version, "%s: the controller has %s, the pin says %s" % (name, have, version)


def _collections_called(text):
    """namespace.collection of every FQCN module, action, lookup, filter or test a YAML file calls."""
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    fqcn = r"([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+"
    patterns = (
        r"^\s*(?:-\s+)?%s:" % fqcn,  # a task's module or action
        r"(?:lookup|query|q)\(\s*['\"]%s" % fqcn,  # lookups
        r"\|\s*%s\b" % fqcn,  # filters
        r"\bis\s+(?:not\s+)?%s\b" % fqcn,  # tests
    )
    found = set()
    for pattern in patterns:
        found.update(re.findall(pattern, text, flags=re.MULTILINE))
    return found


def test_every_collection_a_playbook_or_role_calls_is_a_declared_dependency():
    """ansible-core refuses a playbook whose module it cannot resolve, even in a skipped task
    (rollback.yml's amazon.aws.route53): each one must come with the collection."""
    declared = set(galaxy_dependencies()) | {"ansible.builtin", "ansible.legacy", SELF}
    called = {}
    files = [*REPO.glob("*.yml"), *(REPO / "playbooks").rglob("*.yml"), *(REPO / "roles").rglob("*.yml")]
    for path in files:
        for collection in _collections_called(path.read_text(encoding="utf-8")):
            called.setdefault(collection, path.relative_to(REPO))
    assert {"amazon.aws", "awx.awx", "community.general"} <= set(called), called
    missing = {name: str(path) for name, path in called.items() if name not in declared}
    assert missing == {}, "called but not in galaxy.yml's dependencies: %s" % missing


# ---- the execution environment ----


def _requirement_lines(path):
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [Requirement(line) for line in lines if line]


@pytest.fixture(scope="module")
def ee_context(tmp_path_factory):
    context = tmp_path_factory.mktemp("ee") / "context"
    elsewhere = context.parent  # relative paths in the definition resolve against its own directory
    proc = run(
        [tool("ansible-builder"), "create", "--file", str(EE_FILE), "--context", str(context),
         "--output-filename", "Containerfile"],
        cwd=elsewhere,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return context


def test_ansible_builder_creates_a_build_context(ee_context):
    containerfile = (ee_context / "Containerfile").read_text(encoding="utf-8")
    assert 'ARG EE_BASE_IMAGE="ywmessaging-ee-base:latest"' in containerfile
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
    core = next(r for r in _requirement_lines(REPO / "requirements.txt") if r.name == "ansible-core")
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core%s ansible-runner==' % core.specifier in containerfile
    assert "introspect" in containerfile and "install-from-bindep" in containerfile
    for script in ("assemble", "check_ansible", "check_galaxy", "install-from-bindep", "introspect.py"):
        assert (ee_context / "_build" / "scripts" / script).is_file(), script


def test_the_build_context_carries_the_pinned_dependencies(ee_context):
    build = ee_context / "_build"
    python = {r.name.lower(): r for r in _requirement_lines(build / "requirements.txt")}
    for name in ("boto3", "botocore", "dnspython"):
        assert name in python, name
        assert str(python[name].specifier).startswith("=="), "%s is not pinned" % name
    for name in python:
        assert not name.startswith(DEV_TOOLS), "%s is development toolchain, not runtime" % name
    galaxy = load_yaml(build / "requirements.yml")["collections"]
    assert pinned(galaxy) == pinned(load_yaml(REQUIREMENTS)["collections"])
    bindep = (build / "bindep.txt").read_text(encoding="utf-8")
    assert "openssh-clients [platform:rpm]" in bindep


def test_the_python_pins_satisfy_what_amazon_aws_asks_for():
    ours = {r.name.lower(): r for r in _requirement_lines(REPO / "meta" / "ee-requirements.txt")}
    asked = run([tool("ansible-galaxy"), "collection", "list", "amazon.aws", "--format", "json"], cwd=REPO)
    assert asked.returncode == 0, asked.stderr
    path = next(Path(p) for p, found in json.loads(asked.stdout).items() if "amazon.aws" in found)
    wanted = _requirement_lines(path / "amazon" / "aws" / "requirements.txt")
    assert {r.name.lower() for r in wanted} >= {"boto3", "botocore"}
    for requirement in wanted:
        (version,) = [spec.version for spec in ours[requirement.name.lower()].specifier]
        assert requirement.specifier.contains(version), "%s: %s is outside %s" % (
            requirement.name,
            version,
            requirement,
        )


def test_the_definition_names_no_registry_host():
    name = load_yaml(EE_FILE)["images"]["base_image"]["name"]
    first = name.split("/", 1)[0]
    assert "/" not in name or not ("." in first or ":" in first or first == "localhost"), name
    assert load_yaml(EE_FILE)["version"] == 3


def test_ansible_builder_reads_the_collections_runtime_needs_not_the_dev_toolchain(project_sync):
    """Any image that installs this collection gets meta/execution-environment.yml's lists, which
    ansible-builder's introspection reads instead of the root requirements.txt (the dev toolchain)."""
    cache, proc = project_sync
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert load_yaml(EE_META)["dependencies"] == {"python": "meta/ee-requirements.txt", "system": "meta/ee-bindep.txt"}
    result = run([tool("ansible-builder"), "introspect", "--sanitize", str(cache)], cwd=cache)
    assert result.returncode == 0, result.stdout + result.stderr
    data = yaml.safe_load(result.stdout.split("\n", 1)[1])
    ours = [line.split("#")[0].strip() for line in data["python"] if "from collection %s" % SELF in line]
    assert sorted(ours) == sorted(str(r) for r in _requirement_lines(REPO / "meta" / "ee-requirements.txt"))
    for line in data["python"]:
        assert not line.lower().startswith(DEV_TOOLS), line
