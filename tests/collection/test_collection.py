"""The collection as users get it: FQCN resolution from a fresh clone, ansible-doc, and a built
tarball that offers ywmessaging.scaling.site / .rollback wherever it is installed."""

import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
MODULES = sorted(
    name[:-3]
    for name in os.listdir(os.path.join(ROOT, "plugins", "modules"))
    if name.endswith(".py") and not name.startswith("_")
)
# The first play of each playbook the collection offers: seeing it proves the playbook resolved.
FIRST_PLAY = {"site": "Pre-flight - inventory, reachability", "rollback": "Rollback - begin"}
ROLES_DIR = os.path.join(ROOT, "roles")
ROLES = sorted(
    name
    for name in (os.listdir(ROLES_DIR) if os.path.isdir(ROLES_DIR) else [])
    if os.path.isfile(os.path.join(ROLES_DIR, name, "tasks", "main.yml"))
)


def sh(argv, cwd, env=None, timeout=300):
    base = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    base["PATH"] = BIN + os.pathsep + base.get("PATH", "")
    base.update(env or {})
    return subprocess.run(argv, cwd=cwd, env=base, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory):
    """What a user gets from `git clone` (tracked and to-be-tracked files, nothing ignored),
    after the README's setup links the collection (./run link)."""
    dest = tmp_path_factory.mktemp("clone") / "scaling"
    files = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for rel in filter(None, files):
        src = os.path.join(ROOT, rel.decode())
        if not os.path.lexists(src):
            continue  # deleted in the working tree, not yet committed
        target = dest / rel.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    assert not (dest / ".collections").exists()
    proc = sh(["bash", "run", "link"], cwd=dest)
    assert proc.returncode == 0, proc.stderr
    return dest


@pytest.fixture(scope="module")
def built_tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    proc = sh(["ansible-galaxy", "collection", "build", "--output-path", str(out), ROOT], cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tarball,) = out.glob("ywmessaging-scaling-*.tar.gz")
    return tarball


def test_site_and_rollback_resolve_by_fqcn_from_a_fresh_clone(fresh_clone):
    for playbook in ("site.yml", "rollback.yml"):
        proc = sh(["ansible-playbook", playbook, "-i", "localhost,", "--list-tasks"], cwd=fresh_clone)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert FIRST_PLAY[playbook.split(".", maxsplit=1)[0]] in proc.stdout, proc.stdout


def test_modules_resolve_by_fqcn_from_a_fresh_clone(fresh_clone):
    assert MODULES, "the collection ships no module"
    for module in MODULES:
        proc = sh(["ansible-doc", "-t", "module", "--json", f"ywmessaging.scaling.{module}"], cwd=fresh_clone)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)[f"ywmessaging.scaling.{module}"]["doc"]
        assert doc["short_description"]


def test_ansible_doc_lists_every_module(fresh_clone):
    proc = sh(["ansible-doc", "-l", "ywmessaging.scaling", "--json"], cwd=fresh_clone)
    assert proc.returncode == 0, proc.stderr
    listed = sorted(name.rsplit(".", 1)[1] for name in json.loads(proc.stdout))
    assert listed == MODULES


def test_ansible_doc_lists_every_role(fresh_clone):
    proc = sh(["ansible-doc", "-t", "role", "-l", "ywmessaging.scaling", "--json"], cwd=fresh_clone)
    assert proc.returncode == 0, proc.stderr
    listed = sorted(name.rsplit(".", 1)[1] for name in json.loads(proc.stdout or "{}"))
    assert listed == ROLES


def test_built_tarball_ships_the_collection_and_nothing_local(built_tarball):
    with tarfile.open(built_tarball) as tar:
        names = tar.getnames()
    assert "MANIFEST.json" in names and "FILES.json" in names
    assert "playbooks/site.yml" in names and "playbooks/rollback.yml" in names
    for module in MODULES:
        assert f"plugins/modules/{module}.py" in names
    for local in (".venv", ".collections", ".git", ".ci"):
        assert not any(n == local or n.startswith(local + "/") for n in names), local


def test_installed_tarball_offers_site_and_rollback(built_tarball, tmp_path):
    dest = tmp_path / "collections"
    proc = sh(
        ["ansible-galaxy", "collection", "install", "--no-deps", "--force", "-p", str(dest), str(built_tarball)],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"ANSIBLE_COLLECTIONS_PATH": str(dest)}
    for name in ("site", "rollback"):
        proc = sh(
            ["ansible-playbook", f"ywmessaging.scaling.{name}", "-i", "localhost,", "--list-tasks"],
            cwd=elsewhere,
            env=env,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert FIRST_PLAY[name] in proc.stdout, proc.stdout
    proc = sh(["ansible-doc", "-l", "ywmessaging.scaling", "--json"], cwd=elsewhere, env=env)
    assert sorted(n.rsplit(".", 1)[1] for n in json.loads(proc.stdout)) == MODULES
