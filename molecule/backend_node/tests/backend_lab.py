"""Helpers of the backend_node scenario's tests: HTTP on a backend's loopback (curl inside its container),
ansible-playbook runs against Molecule's inventory, and the figures printed at the end."""

import json
import os
import shutil
import subprocess
import sys
import time

import yaml

SCENARIO = os.environ.get("MOLECULE_SCENARIO_DIRECTORY", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROJECT = os.path.dirname(os.path.dirname(SCENARIO))
BACKENDS = ["backend_node-bookworm", "backend_node-trixie"]
DB = "backend_node-db"
UTIL = "backend_node-util"
REPO = "git://backend_node-util/sample-backend.git"
SERVICE = "ywm-api"
BASE = "/srv/ywm-api"
ENV_FILE = f"/etc/{SERVICE}/environment"
USER = "ywm-api"
with open(os.path.join(SCENARIO, "molecule.yml"), encoding="utf-8") as _fh:
    GROUP_VARS = yaml.safe_load(_fh)["provisioner"]["inventory"]["group_vars"]
# The lab's database password (group_vars in molecule.yml): it must appear in no output or log.
DB_PASSWORD = GROUP_VARS["all"]["lab_pg_password"]

FIGURES = {}
# Every ansible-playbook output of the verify step, searched for secrets at the end.
OUTPUTS = []


def dexec(container, command, timeout=120):
    """Run a shell command inside a lab container (no network traffic leaves the machine)."""
    return subprocess.run(
        ["docker", "exec", container, "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def http(container, method, path, body=None, token=None):
    """One request to the app on the container's loopback: (status, parsed JSON or text, headers)."""
    args = ["curl", "-s", "-m", "10", "-D", "/dev/stderr", "-X", method, f"'http://127.0.0.1:3000{path}'"]
    if body is not None:
        payload = json.dumps(body).replace("'", "'\\''")
        args += ["-H", "'Content-Type: application/json'", "--data", f"'{payload}'"]
    if token:
        args += ["-H", f"'Authorization: Bearer {token}'"]
    args += ["-w", "'\\n%{http_code}'"]
    proc = dexec(container, " ".join(args))
    text, status = proc.stdout.rsplit("\n", 1) if "\n" in proc.stdout else ("", proc.stdout)
    headers = {}
    for line in proc.stderr.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    return int(status or 0), parsed, headers


def ansible_playbook_bin():
    local = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return local if os.path.exists(local) else shutil.which("ansible-playbook")


def play(playbook, *args, timeout=900):
    """Run a playbook of this scenario against Molecule's inventory; returns (rc, output, seconds)."""
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_CONFIG": os.path.join(PROJECT, "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": os.path.join(PROJECT, ".collections"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        }
    )
    argv = [ansible_playbook_bin(), "-i", os.environ["MOLECULE_INVENTORY_FILE"], os.path.join(SCENARIO, playbook)]
    argv += ["-e", "lab_verify_run=true"]  # not a Molecule converge: converge.yml does not record its duration
    started = time.monotonic()
    proc = subprocess.run(
        argv + list(args), capture_output=True, text=True, env=env, cwd=PROJECT, timeout=timeout, check=False
    )
    seconds = time.monotonic() - started
    output = proc.stdout + proc.stderr
    OUTPUTS.append((" ".join([playbook, *args]), output))
    return proc.returncode, output, seconds


def recap_changed(output):
    """changed= per host from the PLAY RECAP."""
    changed = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[1] == ":" and any(p.startswith("changed=") for p in parts):
            changed[parts[0]] = int(next(p for p in parts if p.startswith("changed=")).split("=", 1)[1])
    return changed


def current_release(container):
    return dexec(container, f"readlink {BASE}/current").stdout.strip()


def main_pid(container):
    return dexec(container, f"systemctl show -p MainPID --value {SERVICE}").stdout.strip()


def rollback_point(container):
    """The parsed rollback-point.json of a backend, or None."""
    proc = dexec(container, f"cat {BASE}/rollback-point.json")
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def file_state(container):
    """What a failed run must not change: environment file, unit, current, MainPID."""
    proc = dexec(
        container,
        f"sha256sum {ENV_FILE} /etc/systemd/system/{SERVICE}.service; readlink {BASE}/current; "
        f"systemctl show -p MainPID --value {SERVICE}",
    )
    return proc.stdout


def tag_commit(tag):
    proc = dexec(UTIL, f"git --git-dir /srv/git/sample-backend.git rev-parse '{tag}^{{commit}}'")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def record(name, value):
    FIGURES[name] = value
