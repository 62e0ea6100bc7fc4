"""The collection as users get it: FQCN resolution from a fresh clone, ansible-doc, and a built
tarball that offers ywmessaging.scaling.site / .rollback wherever it is installed."""

import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

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


def git_files(root):
    """What git tracks, or would track (untracked files it does not ignore)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=root, capture_output=True, check=True
    ).stdout
    return {name.decode() for name in out.split(b"\0") if name}


def copy_tracked(dest):
    """A copy of the working tree as git sees it (deleted files left out), at dest."""
    for rel in git_files(ROOT):
        src = os.path.join(ROOT, rel)
        if os.path.lexists(src):  # a file deleted in the working tree, not yet committed, is gone
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel, follow_symlinks=False)
    return dest


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory):
    """What a user gets from `git clone` (tracked and to-be-tracked files, nothing ignored),
    after the README's setup links the collection (./run link)."""
    dest = copy_tracked(tmp_path_factory.mktemp("clone") / "scaling")
    assert not (dest / ".collections").exists()
    proc = sh(["bash", "run", "link"], cwd=dest)
    assert proc.returncode == 0, proc.stderr
    return dest


# Where a working tree collects files git ignores: the sample app's build and dependencies (after
# ./run app), Python and tool caches. The build must leave all of them out; probes make sure each
# place has a file in it even when the gates that fill them have not run.
GENERATED = (
    "tests/app/node_modules/ywm-build-probe/index.js",
    "tests/app/dist/src/ywm-build-probe.js",
    "plugins/modules/__pycache__/ywm_build_probe.cpython-311.pyc",
    ".pytest_cache/ywm-build-probe",
    ".ruff_cache/ywm-build-probe",
    "reports/ywm-build-probe.md",
)


@pytest.fixture(scope="module")
def built_tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    made = []  # (probe file, the directories made for it, deepest first): removed after the build
    for rel in GENERATED:
        path = os.path.join(ROOT, rel)
        if os.path.exists(path):
            continue
        dirs, parent = [], os.path.dirname(path)
        while not os.path.exists(parent):
            dirs.append(parent)
            parent = os.path.dirname(parent)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as probe:
            probe.write("generated, git-ignored: must not ship\n")
        made.append((path, dirs))
    try:
        proc = sh(["ansible-galaxy", "collection", "build", "--output-path", str(out), ROOT], cwd=ROOT)
    finally:
        # Only what the probes made, and a directory only while empty: a lab lane running beside this
        # gate may be writing into the same places (reports/).
        for path, dirs in made:
            os.remove(path)
            for directory in dirs:
                try:
                    os.rmdir(directory)
                except OSError:
                    break
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


def test_built_tarball_holds_only_files_git_tracks(built_tarball):
    """Nothing generated or vendored ships (node_modules, dist, caches, reports): every file of the
    tarball but the two manifests Ansible writes is a file git tracks."""
    with tarfile.open(built_tarball) as tar:
        files = {member.name for member in tar.getmembers() if member.isfile()}
    extra = files - git_files(ROOT) - {"MANIFEST.json", "FILES.json"}
    assert not extra, "the build ships %d files git does not track, e.g. %s" % (len(extra), sorted(extra)[:10])
    assert {"README.md", "meta/runtime.yml", "changelogs/changelog.yaml"} <= files


def test_galaxy_importer_accepts_the_built_tarball(built_tarball, tmp_path):
    """The check Galaxy and Automation Hub run on upload (ansible-lint off: the lint gate runs it
    with the production profile and the collections it needs)."""
    python = os.environ.get("GALAXY_IMPORTER_PYTHON")
    assert python, "GALAXY_IMPORTER_PYTHON is not set: run these tests with ./run collection"
    env = {
        "PATH": os.path.dirname(python) + os.pathsep + os.environ.get("PATH", ""),
        "GALAXY_IMPORTER_RUN_ANSIBLE_LINT": "false",
        "GALAXY_IMPORTER_CHECK_CHANGELOG": "true",
        "GALAXY_IMPORTER_TMP_ROOT_DIR": str(tmp_path),
    }
    proc = sh([python, "-m", "galaxy_importer.main", "--print-result", str(built_tarball)], cwd=tmp_path, env=env)
    log, brace, result = proc.stdout.partition("\n{")
    assert proc.returncode == 0 and "Importer processing completed successfully" in log, proc.stdout + proc.stderr
    problems = [line for line in (log + proc.stderr).splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert not problems, problems
    assert brace, "galaxy-importer printed no result:\n" + proc.stdout[-3000:]
    imported = json.loads("{" + result)
    found = {(item["content_type"], item["name"]) for item in imported["contents"]}
    wanted = {("module", name) for name in MODULES} | {("role", name) for name in ROLES}
    wanted |= {("playbook", name) for name in ("site.yml", "rollback.yml", "verify.yml", "failover.yml")}
    assert wanted <= found, sorted(wanted - found)
    documented = {item["content_name"] for item in imported["docs_blob"]["contents"] if item.get("doc_strings")}
    assert set(MODULES) <= documented, sorted(set(MODULES) - documented)


@pytest.fixture
def release_tree(tmp_path):
    """A copy of what git tracks, where ./run release may rewrite galaxy.yml and the changelog."""
    return copy_tracked(tmp_path / "scaling")


def test_release_sets_the_version_and_renders_every_fragment_into_the_changelog(release_tree, tmp_path):
    fragments = {
        path.name: yaml.safe_load(path.read_text()) for path in (release_tree / "changelogs/fragments").glob("*.yml")
    }
    assert fragments, "no changelog fragment to release"
    proc = sh(["bash", "run", "release", "9.8.7"], cwd=release_tree)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "git tag 9.8.7" in proc.stdout
    assert "\nversion: 9.8.7\n" in (release_tree / "galaxy.yml").read_text()
    changelog = (release_tree / "CHANGELOG.rst").read_text()
    assert "v9.8.7" in changelog
    flat = " ".join(changelog.split())
    for name, sections in fragments.items():  # the first words of every entry of every fragment
        for section, entries in sections.items():
            if section == "trivial":  # changelogs/config.yaml: trivial_section_name, never rendered
                continue
            for entry in entries if isinstance(entries, list) else [entries]:
                words = " ".join(str(entry).split()[:6])
                assert words in flat, (name, words)
    assert not list((release_tree / "changelogs" / "fragments").glob("*.yml")), "fragments left after the release"
    out = tmp_path / "out"
    proc = sh(["ansible-galaxy", "collection", "build", "--output-path", str(out), str(release_tree)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with tarfile.open(out / "ywmessaging-scaling-9.8.7.tar.gz") as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
        assert "CHANGELOG.rst" in tar.getnames()
    assert manifest["collection_info"]["version"] == "9.8.7"


@pytest.mark.parametrize("version", ["", "v1.0.0", "1.0", "01.2.3", "1.2.3; rm -rf /"])
def test_release_refuses_a_version_that_is_not_x_y_z(release_tree, version):
    before = (release_tree / "galaxy.yml").read_text()
    proc = sh(["bash", "run", "release", version], cwd=release_tree)
    assert proc.returncode != 0
    assert "release needs a version X.Y.Z" in proc.stderr, proc.stderr
    assert (release_tree / "galaxy.yml").read_text() == before


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
