"""Fail-safe behaviour of the role, run after the drills (both backends on v1.0.0): bad input of every
class stops before any change, the rollback point a deploy recorded survives a no-op run, tasks_from:
facts, a rollback to the running release, a reconfigure without any network, a drained backend healed
by the next run, and a repository token that never shows in output or process arguments."""

import json
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from backend_lab import (
    BACKENDS,
    BASE,
    DB,
    DB_PASSWORD,
    ENV_FILE,
    OUTPUTS,
    SERVICE,
    USER,
    UTIL,
    current_release,
    dexec,
    file_state,
    http,
    main_pid,
    play,
    recap_changed,
    rollback_point,
    tag_commit,
)

HOOK_LOG = "ywlab-lb-hooks.log"  # in /var/tmp


def hook_events(name):
    return dexec(name, f"cat /var/tmp/{HOOK_LOG}").stdout.split()[0::2]


def ready(name):
    return http(name, "GET", "/health/ready")[0] == 200


# --- every class of bad input fails before any change, naming the variable -----------------------

BAD = {
    "DATABASE_URL host with @": ({"backend_node_db_host": "evil@backend_node-db"}, "backend_node_db_host"),
    "DATABASE_URL host with /": ({"backend_node_db_host": "backend_node-db/evil"}, "backend_node_db_host"),
    "newline in an environment value": (
        {"backend_node_env": {"JOB_INTERVAL_MS": "3000\nNODE_OPTIONS=--inspect"}},
        "values must be one line.*JOB_INTERVAL_MS",
    ),
    "bad environment variable name": ({"backend_node_env": {"BAD-NAME": "1"}}, "names must be letters.*BAD-NAME"),
    "ExecStart argument with a newline": (
        {"backend_node_node_args": ["--max-old-space-size=256\nExecStartPre=/bin/sh -c id"]},
        "backend_node_node_args must not contain newlines",
    ),
    "service name with /": ({"backend_node_service_name": "ywm/api"}, "backend_node_service_name must be"),
    "service name with a space": ({"backend_node_service_name": "ywm api"}, "backend_node_service_name must be"),
}


@pytest.fixture(scope="module")
def bad_runs():
    before = {name: file_state(name) for name in BACKENDS}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case: pool.submit(play, "converge.yml", "-e", json.dumps(spec[0])) for case, spec in BAD.items()}
        results = {case: future.result() for case, future in futures.items()}
    after = {name: file_state(name) for name in BACKENDS}
    return results, before, after


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_before_any_change_naming_the_variable(case, bad_runs):
    results, before, after = bad_runs
    rc, output, _unused = results[case]
    assert rc != 0, output[-2000:]
    assert re.search(r"ywmessaging\.scaling\.backend_node: \d+ problem\(s\):.*" + BAD[case][1], output), output[-3000:]
    for task in ("Install Node.js", "Write the environment", "Write the systemd unit", "Restart the service"):
        assert not re.search(rf"TASK \[[^\]]*{task}", output), f"{case} reached {task}"
    # environment file, unit, current and the running process are the same
    assert before == after
    for name in BACKENDS:
        assert "\n0\n" not in after[name] and len(after[name].splitlines()) == 4, after[name]


def test_one_message_names_every_bad_variable():
    rc, output, _unused = play(
        "converge.yml",
        "--limit",
        BACKENDS[0],
        "-e",
        json.dumps({"backend_node_db_host": "a@b", "backend_node_redis_host": "r/x", "backend_node_env": {"1X": "1"}}),
    )
    assert rc != 0
    message = re.search(r"ywmessaging\.scaling\.backend_node: (\d+) problem\(s\):([^\n]*)", output)
    assert message and int(message.group(1)) == 3, output[-3000:]
    for variable in ("backend_node_db_host", "backend_node_redis_host", "1X"):
        assert variable in message.group(2)


# --- the rollback point: written by a real deploy (test_drills), unchanged by a no-op run -------------
# --- and undrain heals a run killed between readiness and undrain ---------------------------------------


def test_a_no_op_run_keeps_the_rollback_point_and_undrains_a_backend_left_drained():
    name = BACKENDS[0]
    point_state = f"stat -c '%Y %s' {BASE}/rollback-point.json; sha256sum {BASE}/rollback-point.json"
    point = dexec(name, point_state).stdout
    assert rollback_point(name)["release"] == tag_commit("v1.0.0")[:12]
    pid = main_pid(name)
    # what a run killed after readiness but before undrain leaves: the balancer still has it drained
    dexec(name, f'echo "drain $(date +%s.%N)" >> /var/tmp/{HOOK_LOG}; touch /var/tmp/ywlab-lb-drained')
    rc, output, _unused = play("converge.yml", "--limit", name)
    assert rc == 0, output[-3000:]
    assert recap_changed(output) == {name: 0}, output[-3000:]
    assert main_pid(name) == pid  # nothing restarted
    assert hook_events(name)[-1] == "undrain"
    assert dexec(name, "test -e /var/tmp/ywlab-lb-drained").returncode != 0, "still drained"
    assert dexec(name, point_state).stdout == point


def test_a_rerun_of_the_same_deployment_keeps_its_first_rollback_point():
    name = BACKENDS[0]  # v1.1.0 is still built there
    v100, v110 = tag_commit("v1.0.0"), tag_commit("v1.1.0")
    try:
        deployment = ["-e", "backend_node_deployment_id=lab-d1"]
        rc, output, _unused = play("converge.yml", "--limit", name, "-e", "backend_node_git_ref=v1.1.0", *deployment)
        assert rc == 0, output[-3000:]
        first = rollback_point(name)
        assert (first["deployment"], first["release"], first["commit"]) == ("lab-d1", v100[:12], v100)
        # the same deployment switching again (here: back) does not overwrite what it recorded first
        rc, output, _unused = play("converge.yml", "--limit", name, *deployment)
        assert rc == 0, output[-3000:]
        assert current_release(name) == f"releases/{v100[:12]}"
        assert rollback_point(name) == first
        # a rollback writes no point
        rc, output, _unused = play("rollback.yml", "--limit", name, "-e", f"backend_node_rollback_to={v110[:12]}")
        assert rc == 0, output[-3000:]
        assert rollback_point(name) == first
    finally:
        rc, output, _unused = play("converge.yml", "--limit", name)
        assert rc == 0, output[-3000:]
    assert current_release(name) == f"releases/{v100[:12]}"
    point = rollback_point(name)
    assert point["release"] == v110[:12] and point["deployment"] != "lab-d1"


# --- tasks_from: facts -----------------------------------------------------------------------------


def read_facts(directory):
    return {path.stem: json.loads(path.read_text()) for path in directory.glob("*.json")}


def test_facts_entry_point_reads_what_runs_also_in_check_mode(tmp_path):
    rc, output, _unused = play("facts.yml", "--check", "-e", f"lab_facts_dir={tmp_path}")
    assert rc == 0, output[-3000:]
    assert recap_changed(output) == dict.fromkeys(BACKENDS, 0)
    facts = read_facts(tmp_path)
    assert set(facts) == set(BACKENDS), output[-2000:]
    for name in BACKENDS:
        f = facts[name]
        release = current_release(name).split("/")[-1]
        assert f["release"] == release
        assert f["commit"] == dexec(name, f"cat {BASE}/current/REVISION").stdout.strip()
        assert f["previous"] == dexec(name, f"readlink {BASE}/previous").stdout.strip().split("/")[-1]
        assert f["rollback_point"] == rollback_point(name)
        assert f["database"] == "backend_node-db:5432"
        assert (f["service"], f["port"], f["base_dir"]) == (SERVICE, 3000, BASE)
    assert DB_PASSWORD not in output


def test_facts_on_a_host_never_deployed_to_are_empty(tmp_path):
    rc, output, _unused = play(
        "facts.yml", "--check", "-e", f"lab_facts_hosts={UTIL}", "-e", f"lab_facts_dir={tmp_path}"
    )
    assert rc == 0, output[-3000:]
    assert read_facts(tmp_path)[UTIL] == {
        "release": "",
        "commit": "",
        "previous": "",
        "rollback_point": {},
        "database": "",
        "service": SERVICE,
        "port": 3000,
        "base_dir": BASE,
    }


# --- a rollback to the release that runs already ------------------------------------------------------


def test_a_rollback_to_the_running_release_changes_nothing():
    before = {name: (file_state(name), len(hook_events(name))) for name in BACKENDS}
    release = current_release(BACKENDS[0]).split("/")[-1]
    assert release == current_release(BACKENDS[1]).split("/")[-1]
    rc, output, _unused = play("rollback.yml", "-e", f"backend_node_rollback_to={release}")
    assert rc == 0, output[-3000:]
    assert recap_changed(output) == dict.fromkeys(BACKENDS, 0), output[-3000:]
    for name in BACKENDS:
        assert file_state(name) == before[name][0]  # no restart
        assert hook_events(name)[before[name][1] :] == ["undrain"]  # no drain; the ready backend undrained


# --- tasks_from: reconfigure, with no network -----------------------------------------------------------


def test_reconfigure_changes_the_database_endpoint_without_any_network():
    name = BACKENDS[0]
    db_ip = dexec(name, f"getent ahostsv4 {DB} | head -n1 | cut -d' ' -f1").stdout.strip()
    assert re.fullmatch(r"[0-9.]+", db_ip), db_ip
    release, pid = current_release(name), main_pid(name)
    # an unreachable repository and a package that does not exist: any git or apt use would fail
    offline = [
        "-e",
        "backend_node_git_repo=git://backend_node-util:9419/no-such-repo.git",
        "-e",
        json.dumps({"backend_node_packages": ["ywlab-no-such-package"]}),
    ]
    try:
        rc, output, _unused = play("reconfigure.yml", "--limit", name, "-e", f"backend_node_db_host={db_ip}", *offline)
        assert rc == 0, output[-3000:]
        assert f"@{db_ip}:5432/" in dexec(name, f"grep ^DATABASE_URL= {ENV_FILE}").stdout
        assert current_release(name) == release
        assert main_pid(name) != pid
        assert ready(name) and http(name, "GET", "/health/detailed")[1]["checks"]["database"] == "ok"
        assert hook_events(name)[-2:] == ["drain", "undrain"]
        tasks = " ".join(re.findall(r"TASK \[([^\]]*)\]", output))
        for word in ("ls-remote", "Fetch", "npm", "Install Node.js", "Ask the repository"):
            assert word not in tasks
    finally:
        rc, output, _unused = play("reconfigure.yml", "--limit", name, *offline)
        assert rc == 0, output[-3000:]
    assert "@backend_node-db:5432/" in dexec(name, f"grep ^DATABASE_URL= {ENV_FILE}").stdout
    rc, output, _unused = play("converge.yml", "--limit", name)
    assert rc == 0 and recap_changed(output) == {name: 0}, output[-3000:]


# --- a repository URL with a token --------------------------------------------------------------------

LAB_GIT_AUTH = "ywlab-tok-9c41e7d2b8"
# A read-only "dumb HTTP" git server on the util host that wants Basic auth with the token and answers
# slowly, so the git processes on the backend live long enough to be seen in /proc.
AUTH_SERVER = r"""
import base64, functools, http.server, os, time
open("/var/tmp/ywlab-git-server.pid", "w").write(str(os.getpid()))
token = open("/var/tmp/ywlab-git-token").read().strip()
want = "Basic " + base64.b64encode(("ywlab:" + token).encode()).decode()
class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.7)
        if self.headers.get("Authorization") != want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="lab"')
            self.end_headers()
            return
        super().do_GET()
http.server.ThreadingHTTPServer(("", 8418), functools.partial(Handler, directory="/srv/git")).serve_forever()
"""
# Samples every process's arguments on the backend; the pattern does not match its own command line.
SAMPLER = (
    "rm -f /var/tmp/ywlab-cmdlines; while [ ! -e /var/tmp/ywlab-stop-sampler ]; do "
    "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' "
    "| grep -o -e 'ywlab-tok[-]9c41' -e 'git-remote-htt[p][^ ]* [^ ]*' "
    ">> /var/tmp/ywlab-cmdlines; sleep 0.1; done; rm -f /var/tmp/ywlab-stop-sampler"
)


@pytest.fixture
def auth_git_server():
    dexec(UTIL, f"echo {LAB_GIT_AUTH} > /var/tmp/ywlab-git-token")
    dexec(UTIL, "git --git-dir /srv/git/sample-backend.git update-server-info")
    server = subprocess.Popen(["docker", "exec", "-i", UTIL, "python3", "-c", AUTH_SERVER])
    probe = "python3 -c \"import socket; socket.create_connection(('127.0.0.1', 8418))\""
    assert any(time.sleep(0.5) or dexec(UTIL, probe).returncode == 0 for _unused in range(40))
    yield f"http://ywlab:{LAB_GIT_AUTH}@{UTIL}:8418/sample-backend.git"
    dexec(
        UTIL, "kill $(cat /var/tmp/ywlab-git-server.pid); rm -f /var/tmp/ywlab-git-token /var/tmp/ywlab-git-server.pid"
    )
    server.wait(timeout=30)


def test_a_repository_token_is_in_no_output_and_no_process_argument(auth_git_server):
    name = BACKENDS[0]
    v100 = tag_commit("v1.0.0")
    # a wrong port: the error names the repository with the token redacted
    bad_url = auth_git_server.replace(":8418/", ":9/")
    rc, output, _unused = play("converge.yml", "--limit", name, "-v", "-e", f"backend_node_git_repo={bad_url}")
    assert rc != 0
    assert f"Cannot read the repository http://***@{UTIL}:9/sample-backend.git" in output, output[-3000:]
    # the real server, and an empty local copy so that git has to fetch through it too
    dexec(name, f"rm -rf {BASE}/repo.git")
    sampler = subprocess.Popen(["docker", "exec", name, "sh", "-c", SAMPLER])
    try:
        repo = ["-e", f"backend_node_git_repo={auth_git_server}", "-e", f"backend_node_git_ref={v100}"]
        rc, output, _unused = play("converge.yml", "--limit", name, "-v", *repo)
    finally:
        dexec(name, "touch /var/tmp/ywlab-stop-sampler")
        sampler.wait(timeout=30)
    assert rc == 0, output[-3000:]
    assert re.search(r"TASK \[[^\]]*Fetch branches and tags from http://\*\*\*@backend_node-util:8418/", output)
    assert dexec(name, f"git --git-dir {BASE}/repo.git cat-file -e {v100}^{{commit}}").returncode == 0
    seen = dexec(name, "cat /var/tmp/ywlab-cmdlines").stdout
    assert f"git-remote-http http://{UTIL}:8418/sample-backend.git" in seen, seen  # the sampler saw git at work
    assert "ywlab-tok-9c41" not in seen, seen
    stored = dexec(name, f"stat -c '%a %U' {BASE}/.git-credentials").stdout.split()
    assert stored == ["600", USER]
    for what, text in OUTPUTS:
        assert LAB_GIT_AUTH not in text, f"the token leaked in the output of {what}"
        assert DB_PASSWORD not in text, f"the database password leaked in the output of {what}"
    # back to the git:// remote: the stored credentials go
    rc, output, _unused = play("converge.yml", "--limit", name)
    assert rc == 0, output[-3000:]
    assert dexec(name, f"test -e {BASE}/.git-credentials").returncode != 0
    assert current_release(name) == f"releases/{v100[:12]}"
