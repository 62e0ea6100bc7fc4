"""Helpers of the backend_node scenario's tests: HTTP on a backend's loopback (curl inside its container),
the release, process and rollback point a backend runs, and the lab's tags. Commands in the lab, playbook
runs and the figures printed at the end come from molecule/_shared/labkit.py."""

import json
import os

import labkit
import yaml

SCENARIO = os.environ.get("MOLECULE_SCENARIO_DIRECTORY", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKENDS = ["backend_node-bookworm", "backend_node-trixie"]
DB = "backend_node-db"
UTIL = "backend_node-util"
SERVICE = "ywm-api"
BASE = "/srv/ywm-api"
ENV_FILE = f"/etc/{SERVICE}/environment"
USER = "ywm-api"
with open(os.path.join(SCENARIO, "molecule.yml"), encoding="utf-8") as _fh:
    GROUP_VARS = yaml.safe_load(_fh)["provisioner"]["inventory"]["group_vars"]
# The lab's database password (group_vars in molecule.yml): it must appear in no output or log.
DB_PASSWORD = GROUP_VARS["all"]["lab_pg_password"]


def play(playbook, *args):
    """Run a playbook of this scenario against Molecule's inventory: a labkit.Run (its output is kept in
    labkit.OUTPUTS). lab_verify_run: not a Molecule converge, so converge.yml does not record its duration."""
    return labkit.play(playbook, "-e", "lab_verify_run=true", *args)


def http(container, method, path, body=None, token=None):
    """One request to the app on the container's loopback: (status, parsed JSON or text, headers)."""
    args = ["curl", "-s", "-m", "10", "-D", "/dev/stderr", "-X", method, f"'http://127.0.0.1:3000{path}'"]
    if body is not None:
        payload = json.dumps(body).replace("'", "'\\''")
        args += ["-H", "'Content-Type: application/json'", "--data", f"'{payload}'"]
    if token:
        args += ["-H", f"'Authorization: Bearer {token}'"]
    args += ["-w", "'\\n%{http_code}'"]
    proc = labkit.docker_exec(container, " ".join(args), check=False)
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


def current_release(container):
    return labkit.docker_exec(container, f"readlink {BASE}/current", check=False).stdout.strip()


def main_pid(container):
    return labkit.docker_exec(container, f"systemctl show -p MainPID --value {SERVICE}", check=False).stdout.strip()


def rollback_point(container):
    """The parsed rollback-point.json of a backend, or None."""
    proc = labkit.docker_exec(container, f"cat {BASE}/rollback-point.json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def file_state(container):
    """What a failed run must not change: environment file, unit, current, MainPID."""
    proc = labkit.docker_exec(
        container,
        f"sha256sum {ENV_FILE} /etc/systemd/system/{SERVICE}.service; readlink {BASE}/current; "
        f"systemctl show -p MainPID --value {SERVICE}",
        check=False,
    )
    return proc.stdout


def tag_commit(tag):
    return labkit.docker_exec(
        UTIL, f"git --git-dir /srv/git/sample-backend.git rev-parse '{tag}^{{commit}}'"
    ).stdout.strip()
