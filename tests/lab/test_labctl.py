"""labctl: the lab tooling says what is missing and how to fix it, and rebuilds images only when
their recipe changes."""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
LABCTL = os.path.join(HERE, "labctl.py")

spec = importlib.util.spec_from_file_location("labctl", LABCTL)
labctl = importlib.util.module_from_spec(spec)
spec.loader.exec_module(labctl)


def run_labctl(args, env, user=None):
    argv = [sys.executable, LABCTL, *args]
    if user:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def no_engine_env(tmp_path):
    """An environment where no Docker engine answers: the client points at a socket nobody serves."""
    env = dict(os.environ)
    env["DOCKER_HOST"] = f"unix://{tmp_path}/nobody-serves-this.sock"
    return env


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_without_root_and_without_engine_it_stops_and_says_how_to_fix_it(no_engine_env, tmp_path):
    os.chmod(tmp_path, 0o755)  # noqa: S103 - the unprivileged user must reach the socket path
    proc = run_labctl(["engine"], no_engine_env, user=65534)
    assert proc.returncode == 2
    assert "No Docker engine answers" in proc.stderr
    assert "not running as root" in proc.stderr
    assert "systemctl start docker" in proc.stderr


def test_without_engine_and_no_way_to_install_one_it_stops_and_says_so(no_engine_env, tmp_path):
    # A machine with python3 but neither dockerd nor apt-get on PATH.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(sys.executable, bindir / "python3")
    env = dict(no_engine_env, PATH=str(bindir))
    proc = run_labctl(["engine"], env)
    assert proc.returncode == 2
    if os.geteuid() == 0:
        assert "no apt-get to install one" in proc.stderr
        assert "Install Docker Engine" in proc.stderr
    else:
        assert "not running as root" in proc.stderr


def test_missing_package_without_apt_get_names_the_package(monkeypatch):
    monkeypatch.setattr(labctl.shutil, "which", lambda name: None)
    with pytest.raises(labctl.LabError, match=r"debootstrap.*no apt-get"):
        labctl.apt_install(["debootstrap"], "building lab images")


def test_image_recipe_digest_changes_with_the_recipe(monkeypatch):
    monkeypatch.setenv("YWLAB_DEBIAN_MIRROR", "http://mirror.invalid/debian")
    monkeypatch.setenv("YWLAB_SECURITY_MIRROR", "http://mirror.invalid/debian-security")
    base = labctl.image_recipe("bookworm")
    assert labctl.recipe_digest(base) == labctl.recipe_digest(labctl.image_recipe("bookworm"))
    assert labctl.recipe_digest(base) != labctl.recipe_digest(labctl.image_recipe("trixie"))
    more = dict(base, packages=[*base["packages"], "vim"])
    assert labctl.recipe_digest(base) != labctl.recipe_digest(more)


def test_a_new_or_changed_extra_ca_rebuilds_the_images(monkeypatch, tmp_path):
    monkeypatch.setenv("YWLAB_DEBIAN_MIRROR", "http://mirror.invalid/debian")
    monkeypatch.setattr(labctl, "EXTRA_CA_DIR", str(tmp_path))
    digests = [labctl.recipe_digest(labctl.image_recipe("bookworm"))]
    (tmp_path / "proxy.crt").write_text("one")
    digests.append(labctl.recipe_digest(labctl.image_recipe("bookworm")))
    (tmp_path / "proxy.crt").write_text("two")
    digests.append(labctl.recipe_digest(labctl.image_recipe("bookworm")))
    (tmp_path / "notes.txt").write_text("not a certificate")
    digests.append(labctl.recipe_digest(labctl.image_recipe("bookworm")))
    assert len(set(digests[:3])) == 3 and digests[3] == digests[2]


def test_images_are_fetched_through_the_cache(monkeypatch):
    url = labctl.via_cache("http://mirror.invalid/debian")
    assert url == f"http://127.0.0.1:{labctl.LAB['apt_cache_port']}/mirror.invalid/debian"


def test_mirror_comes_from_the_environment_before_the_hosts_sources(monkeypatch):
    monkeypatch.setenv("YWLAB_DEBIAN_MIRROR", "http://mirror.invalid/debian")
    monkeypatch.setenv("YWLAB_SECURITY_MIRROR", "")
    mirror = labctl.host_mirrors()[0]
    assert mirror == "http://mirror.invalid/debian"


@pytest.mark.skipif(not shutil.which("docker"), reason="needs the docker client")
def test_status_reports_a_missing_engine(no_engine_env):
    proc = run_labctl(["status"], no_engine_env)
    assert proc.returncode == 0
    assert "docker engine : DOWN" in proc.stdout
