"""Test helpers of the full-stack scenario (default): the lab of inventories/lab driven
from the controller. Commands reach a host with `docker exec` into its container; HTTP reaches the
API through the load balancer from the util host, which resolves the API name with the lab's BIND.

docker exec, the Ansible environment, the playbook runner, its PLAY RECAP and the figures come from
molecule/_shared/labkit.py (on sys.path, like this package); what is here is the stack's own."""

import contextlib
import json
import os
import subprocess
import threading

import labkit
import yaml
from labkit import FIGURES, OUTPUTS, Run, ansible_env, print_figures, record  # noqa: F401 - re-exported

SCENARIO = os.environ["MOLECULE_SCENARIO_DIRECTORY"]
PROJECT = labkit.PROJECT
INVENTORY = os.path.join(PROJECT, "inventories", "lab")
REPORTS = os.path.join(PROJECT, "reports")

with open(os.path.join(INVENTORY, "group_vars", "all.yml"), encoding="utf-8") as _fh:
    ALL_VARS = yaml.safe_load(_fh)

GROUPS, HOSTVARS = labkit.inventory_hosts(INVENTORY)
BACKENDS = GROUPS["backend"]
DOMAIN = ALL_VARS["api_domain"]
LB = GROUPS["lb"][0]
CLIENT = GROUPS["lab_util"][0]  # the util host plays the API's clients
# Every secret of the lab inventory: none may appear in any output.
SECRETS = sorted(v for k, v in ALL_VARS.items() if k.startswith("lab_") and isinstance(v, str) and len(v) > 8)
ROOT_CA = "/etc/ssl/ywlab/acme-root.pem"  # Pebble's issuing root, copied to the client by the tests
# OUTPUTS (labkit's): every ansible-playbook output of these tests, searched for secrets at the end.


with open(os.path.join(PROJECT, "tests", "lab", "lab.json"), encoding="utf-8") as _fh:
    SCALEOUT = json.load(_fh)["scaleout"]


@contextlib.contextmanager
def cpu_quota(group=SCALEOUT["group"], cpus=SCALEOUT["cpus"], until=None):
    """Each host of the group limited to `cpus` cores while the block runs (tests/lab/lab.json's
    scaleout): on one machine, so that several backends measure like several servers. Lifted after,
    whatever happened - or as soon as a process whose command line matches `until` (pgrep -f, on the
    controller) runs: the part of a run the quota is for is over then."""
    names = [container(host) for host in GROUPS[group]]
    # `--cpus 0` leaves the quota as it was: as many cores as the machine has is no limit
    lift = ["docker", "update", "--cpus", str(os.cpu_count() or 1), *names]
    sh(["docker", "update", "--cpus", str(cpus), *names])
    done = threading.Event()

    def lift_when_it_runs():
        while not done.wait(0.2):
            if subprocess.run(["pgrep", "-f", until], capture_output=True, check=False).returncode == 0:
                sh(lift, check=False)
                return

    watcher = threading.Thread(target=lift_when_it_runs, daemon=True) if until else None
    if watcher:
        watcher.start()
    try:
        yield names
    finally:
        done.set()
        if watcher:
            watcher.join()
        sh(lift, check=False)


def container(host):
    return HOSTVARS[host]["ansible_host"]


def sh(argv, timeout=120, check=True, **kw):
    """A command on the controller."""
    return labkit.run(argv, timeout=timeout, check=check, **kw)


def on(host, script, timeout=120, check=True):
    """A shell command on a lab host."""
    return labkit.docker_exec(container(host), script, timeout=timeout, check=check)


def playbook_argv(playbook, *args):
    """ansible-playbook as an operator types it: the lab inventory, a playbook of the project."""
    return labkit.playbook_argv(os.path.join(PROJECT, playbook), *args, inventory=INVENTORY)


def play(playbook, *args, timeout=1800):
    """A playbook of the project against the lab inventory: a labkit.Run (rc, output, seconds, recap,
    changed, failed, tail())."""
    return labkit.play(os.path.join(PROJECT, playbook), *args, inventory=INVENTORY, cwd=PROJECT, timeout=timeout)


# The API's clients during a drill: on the util host, GET requests cycling over one or more paths
# through the balancer (HTTPS, a bearer token for /api/ paths) until the stop file exists. Counts
# every status per path, which backend served each 200 (the JSON body's "server"), and the time of
# every answer that was not 200, so a drill can say how long a path was affected. A target of
# "dns@<server>" follows DNS instead: before each request it asks that server for the API name
# (no cache, as a client at the end of a TTL does) and connects to the address it answers.
API_CLIENT = r"""
import json, os, socket, ssl, subprocess, sys, time
target, domain, cafile, stop_file, token = sys.argv[1:6]
paths = sys.argv[6:]
context = ssl.create_default_context(cafile=cafile)
counts = {p: {} for p in paths}
served_by, bad, errors, addresses = {}, [], [], {}
def where():
    if not target.startswith("dns@"):
        return target
    answer = subprocess.run(["dig", "+short", "+time=2", "@" + target[4:], domain, "A"], capture_output=True, text=True)
    return (answer.stdout.split() or ["no-answer"])[0]
while not os.path.exists(stop_file):
    for path in paths:
        auth = f"Authorization: Bearer {token}\r\n" if path.startswith("/api/") else ""
        request = f"GET {path} HTTP/1.1\r\nHost: {domain}\r\n{auth}Connection: close\r\n\r\n".encode()
        body = b""
        try:
            address = where()
            addresses[address] = addresses.get(address, 0) + 1
            with socket.create_connection((address, 443), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname=domain) as tls:
                    tls.sendall(request)
                    response = b""
                    while chunk := tls.recv(65536):
                        response += chunk
            head, _unused, body = response.partition(b"\r\n\r\n")
            status = head.split(b" ", 2)[1].decode()
        except Exception as exc:
            status = type(exc).__name__
            errors.append(repr(exc))
        counts[path][status] = counts[path].get(status, 0) + 1
        if status == "200":
            try:
                server = str(json.loads(body).get("server", "?"))
            except (ValueError, AttributeError):
                server = "?"
            served_by[server] = served_by.get(server, 0) + 1
        else:
            bad.append((time.time(), path, status))
    time.sleep(0.05)
print(json.dumps({"counts": counts, "bad": bad, "served_by": served_by, "errors": errors[:5], "addresses": addresses}))
"""


class PathLoad(labkit.RemoteScript):
    """API clients calling the given paths through the balancer until finished (see API_CLIENT);
    requests flow for 2 s before the drill starts and 1 s after it."""

    def __init__(self, *paths, token="", follow_dns=False):
        stop = labkit.stop_file("/run")  # inside the client container
        target = f"dns@{ALL_VARS['dns_record_nsupdate_server']}" if follow_dns else LB
        super().__init__(
            container(CLIENT), API_CLIENT, target, DOMAIN, ROOT_CA, stop, token, *paths, stop_file=stop, warmup=2
        )
        self.counts, self.bad, self.served_by, self.errors, self.addresses = {}, [], {}, [], {}

    def finish(self, cooldown=1):
        result = super().finish(cooldown=cooldown)
        self.counts, self.bad = result["counts"], result["bad"]
        self.served_by, self.errors, self.addresses = result["served_by"], result["errors"], result["addresses"]
        return self

    def count(self, path, status):
        return self.counts[path].get(str(status), 0)

    def failures(self, path, ok=("200",)):
        return sum(n for status, n in self.counts[path].items() if status not in ok)

    def last_bad(self, path):
        """Time of the last answer on path that was not 200 (None: there was none)."""
        times = [t for t, p, _unused in self.bad if p == path]
        return max(times) if times else None


class LoadClient(PathLoad):
    """One path (https://<api>/health by default), summed up: finish() returns {ok, failed,
    served_by, errors} and fails the test when nothing at all succeeded."""

    def __init__(self, path="/health", follow_dns=False):
        super().__init__(path, follow_dns=follow_dns)
        self.path = path

    def finish(self, cooldown=2):
        super().finish(cooldown=cooldown)  # requests keep flowing 2 s after the drill
        figures = {
            "ok": self.count(self.path, 200),
            "failed": self.failures(self.path),
            "served_by": self.served_by,
            "errors": self.errors,
            "addresses": self.addresses,
        }
        assert figures["ok"] > 0, figures
        return figures


def reports(kind="deploy"):
    """This project's reports of one kind, oldest first (the *-latest links left out)."""
    names = sorted(n for n in os.listdir(REPORTS) if n.startswith(f"{kind}-2") and n.endswith(".json"))
    out = []
    for name in names:
        with open(os.path.join(REPORTS, name), encoding="utf-8") as fh:
            out.append(json.load(fh))
    return out


def served_releases():
    """The release each backend reports on its own loopback (/health/ready)."""
    out = {}
    for backend in BACKENDS:
        body = on(backend, "curl -s -m 5 http://127.0.0.1:3000/health/ready").stdout
        out[backend] = json.loads(body).get("release")
    return out


def env_of(backend):
    """The backend's environment file as a dict (read as root inside its container)."""
    text = on(backend, "cat /etc/ywm-api/environment").stdout
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {k: v.strip().strip('"') for k, v in pairs}


def main_pid(backend):
    return on(backend, "systemctl show -P MainPID ywm-api").stdout.strip()


def running_env(backend):
    """What the running API process actually got (its /proc environ), not what the file says."""
    raw = on(backend, "tr '\\0' '\\n' < /proc/$(systemctl show -P MainPID ywm-api)/environ").stdout
    return dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)


def upstream_servers():
    """The balancer's upstream lines as nginx_lb wrote them (drained servers carry `down`)."""
    text = on(LB, "cat /etc/nginx/ywmessaging/upstream.conf").stdout
    return [line.strip() for line in text.splitlines() if line.strip().startswith("server ")]


def api(method, path, body=None, token=None, at=None):
    """One HTTPS request to the API through the balancer (or at the address `at`, the API name sent all
    the same and its certificate checked), from the client host: (status, parsed body)."""
    args = [
        "curl",
        "-s",
        "-m",
        "10",
        "--cacert",
        ROOT_CA,
        "-X",
        method,
        "--resolve",
        f"{DOMAIN}:443:{at}" if at else f"{DOMAIN}:443:$(getent hosts {LB} | cut -d' ' -f1)",
    ]
    if body is not None:
        payload = json.dumps(body).replace("'", "'\\''")
        args += ["-H", "'Content-Type: application/json'", "--data", f"'{payload}'"]
    if token:
        args += ["-H", f"'Authorization: Bearer {token}'"]
    args += ["-w", "'\\n%{http_code}'", f"'https://{DOMAIN}{path}'"]
    out = on(CLIENT, " ".join(args)).stdout
    text, status = out.rsplit("\n", 1) if "\n" in out else ("", out)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    return int(status or 0), parsed


def login():
    status, body = api(
        "POST",
        "/api/auth/login",
        {"email": ALL_VARS["verify_smoke_email"], "password": ALL_VARS["verify_smoke_password"]},
    )
    assert status == 200, body
    return body["token"]


def psql(sql, database=None):
    """A query on the PostgreSQL primary as postgres: the unaligned, tuples-only result."""
    database = database or ALL_VARS["app_db_name"]
    quoted = sql.replace("'", "'\\''")
    return on(GROUPS["postgresql"][0], f"runuser -u postgres -- psql -XtAc '{quoted}' {database}").stdout.strip()


def dns_answer():
    """What the lab's BIND answers for the API name."""
    name = f"{ALL_VARS['dns_record_name']}.{ALL_VARS['dns_record_zone']}"
    return on(CLIENT, f"dig +short @{ALL_VARS['dns_record_nsupdate_server']} {name} A").stdout.split()


# What each tier's role manages on its hosts: files hashed and the service whose main PID must not
# change. A run refused for bad input must leave all of it as it was.
MANAGED = {
    "pgbouncer": (
        ["/etc/pgbouncer", "/etc/systemd/system/pgbouncer.service.d", "/var/backups/ywmessaging-db"],
        "pgbouncer",
    ),
    "backend": (
        ["/etc/ywm-api", "/etc/systemd/system/ywm-api.service", "/srv/ywm-api/current", "/srv/ywm-api/previous"],
        "ywm-api",
    ),
    "lb": (["/etc/nginx", "/etc/letsencrypt/live", "/etc/letsencrypt/renewal"], "nginx"),
}


def managed_state():
    """{host: (sha256 of every managed file and link target, MainPID)} across the managed tiers."""
    state = {}
    for group, (paths, service) in MANAGED.items():
        for host in GROUPS[group]:
            listing = on(
                host,
                f'for p in {" ".join(paths)}; do [ -L $p ] && echo "$p -> $(readlink $p)"; done; '
                f"find {' '.join(paths)} -type f -exec sha256sum {{}} + 2>/dev/null | sort; "
                f"systemctl show -P MainPID {service}",
                check=False,
            ).stdout
            state[host] = listing
    return state
