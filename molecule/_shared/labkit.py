"""The one test harness of the Molecule scenarios: what every scenario's testinfra suite needs to drive
the lab from the controller. Scenario files keep only their own domain helpers (pgbench, access logs,
the API's clients...) and build them on this.

- Commands on lab hosts: ``docker_exec(container, "shell script" | [argv], env=, user=, workdir=,
  timeout=, check=)`` (``exec_argv`` builds the argv, ``docker_popen`` starts it in the background,
  ``run`` is the same for a command on the controller). ``check=True`` (the default) fails the test
  with the container, the command, rc and the ends of stdout/stderr.
- Scripts that answer in JSON: ``run_script(container, script, *args)`` runs a Python script once and
  returns the JSON it printed; ``RemoteScript(container, script, *args, stop_file=stop_file())``
  keeps one running (a load client during a drill) until ``finish()`` touches its stop file.
- Ansible: ``ansible_env(**overrides)`` (the project's ansible.cfg, ``.collections``, no colour),
  ``ansible_bin(name)``, ``molecule_inventory()``, ``playbook_argv(...)`` and ``play(playbook, *args,
  inventory=None, cwd=PROJECT, timeout=900, env=None)`` returning a ``Run``: ``rc``, ``stdout``,
  ``stderr``, ``output`` (both), ``seconds``, ``recap`` ({host: {ok, changed, unreachable, failed,
  skipped, rescued, ignored}}), ``host(name)``, ``changed``/``failed`` totals and ``tail()``. The
  inventory is Molecule's (MOLECULE_INVENTORY_FILE) unless one or several are given; a relative
  playbook is the scenario's own. Every output is kept in ``OUTPUTS`` (to search for secrets).
- ``parse_recap(text)``: the one PLAY RECAP parser (coloured or not).
- Figures: ``record(name, value)`` and ``note(section, line)`` collect what a run measured;
  ``print_figures(terminalreporter, title)`` prints it, ``terminal_summary(title)`` makes the
  ``pytest_terminal_summary`` hook of a scenario's conftest.py.

A scenario's tests/conftest.py puts this directory on sys.path (Molecule runs pytest from the
scenario's tests/ directory, which is not a package)::

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "_shared"))
    import labkit  # noqa: E402
    pytest_terminal_summary = labkit.terminal_summary("<scenario> figures")

Converting the scenarios that still carry their own copy (their owners do it):

pgbouncer (tests/pgblab.py)
  ``docker_exec(c, cmd, env, user, timeout, check=False)`` -> ``labkit.docker_exec(c, cmd, env=env,
  user=user, workdir="/", sh="bash", timeout=timeout, check=check)`` (pgblab's default is
  check=False: keep passing it where a test reads rc itself); ``ansible_env()`` ->
  ``labkit.ansible_env()``; ``inventory()`` -> ``labkit.molecule_inventory()``;
  ``ansible_playbook(pb, *args)`` -> ``labkit.play(pb, *args, timeout=600)`` (``proc.returncode`` ->
  ``run.rc``, ``proc.stdout`` -> ``run.stdout``, ``proc.seconds`` -> ``run.seconds``);
  ``recap(proc.stdout)`` -> ``run.recap`` (same {host: {ok, changed, ...}} shape);
  ``ansible_module`` stays (ad hoc ``ansible`` with the json callback) but builds its argv with
  ``labkit.ansible_bin("ansible")``, ``labkit.molecule_inventory()`` and
  ``labkit.ansible_env(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")``.
  psql/pgbench/parse_pgbench/settle_pgbouncer_servers stay: they are the scenario's domain.

nginx_lb (tests/nginx_lb_lab.py)
  ``dexec(c, *argv, check, timeout)`` -> ``labkit.docker_exec(c, list(argv), check=check,
  timeout=timeout)``; ``sh(c, script)`` -> ``labkit.docker_exec(c, script)``; ``ansible_env()`` ->
  ``labkit.ansible_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json")``; ``run_playbook(pb, *args)`` ->
  ``labkit.play(pb, *args, cwd=SCENARIO_DIR, timeout=600, env=labkit.ansible_env(
  ANSIBLE_CALLBACK_RESULT_FORMAT="json"))`` (``.returncode`` -> ``.rc``; ``.stdout`` stays); the
  ``Wrk`` class starts wrk with ``labkit.docker_popen(host, script)`` (it stops by SIGINT, not by
  a stop file, so it is not a RemoteScript). Log parsing, LogFollower, systemd_times and
  upstream_health stay.

backend_node (tests/backend_lab.py)
  ``dexec(c, cmd)`` -> ``labkit.docker_exec(c, cmd, check=False)``; ``ansible_playbook_bin()`` ->
  ``labkit.ansible_bin()``; ``play(pb, *args)`` -> ``labkit.play(pb, "-e", "lab_verify_run=true",
  *args)`` returning a Run instead of the (rc, output, seconds) tuple; ``recap_changed(output)`` ->
  ``{h: c["changed"] for h, c in run.recap.items()}`` (or ``run.changed``); ``OUTPUTS`` of
  (label, output) pairs -> ``labkit.OUTPUTS`` (outputs; ``run.command`` names the run);
  ``FIGURES``/``record`` -> ``labkit.FIGURES``/``labkit.record``; the conftest keeps adding the
  converge durations to ``labkit.FIGURES`` and then calls ``labkit.print_figures(terminalreporter,
  "backend_node figures", width=58)``. http/current_release/main_pid/rollback_point/file_state/
  tag_commit stay.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(os.path.dirname(HERE))  # molecule/_shared/ -> the collection root

OUTPUTS = []  # every output of play(), in order: a test can search them all for secrets
FIGURES = {}  # name -> value, printed at the end of the run
SECTIONS = {}  # title -> lines, printed after the figures under their own heading


# ---------------------------------------------------------------------------------------------
# commands on the controller and in lab containers
# ---------------------------------------------------------------------------------------------


def _tail(text, chars=3000):
    text = text or ""
    return text if len(text) <= chars else "..." + text[-chars:]


def _explain(what, proc):
    return f"{what}: rc={proc.returncode}\n--- stdout\n{_tail(proc.stdout)}\n--- stderr\n{_tail(proc.stderr)}"


def run(argv, timeout=120, check=True, **kwargs):
    """A command on the controller; with check, a non-zero exit fails the test and says why."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check:
        assert proc.returncode == 0, _explain(" ".join(map(str, argv)), proc)
    return proc


def exec_argv(container, command, env=None, user=None, workdir=None, sh="sh", stdin=False):
    """`docker exec` argv: command is a shell script (a str, run by `<sh> -c`) or an argv (a list)."""
    argv = ["docker", "exec"]
    if stdin:
        argv.append("-i")
    for key, value in (env or {}).items():
        argv += ["-e", f"{key}={value}"]
    if user:
        argv += ["-u", str(user)]
    if workdir:
        argv += ["-w", workdir]
    argv.append(container)
    if isinstance(command, str):
        argv += [sh, "-c", command]
    else:
        argv += [str(part) for part in command]
    return argv


def docker_exec(container, command, env=None, user=None, workdir=None, sh="sh", timeout=120, check=True, input=None):
    """Run a shell script or an argv in a lab container; returns the CompletedProcess (text).

    With check (the default) a non-zero exit fails the test with the container, the command, rc
    and the ends of stdout and stderr. `input` is written to the command's stdin."""
    argv = exec_argv(container, command, env=env, user=user, workdir=workdir, sh=sh, stdin=input is not None)
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        shown = command if isinstance(command, str) else " ".join(map(str, command))
        assert proc.returncode == 0, _explain(f"{container}: {_tail(shown, 500)}", proc)
    return proc


def docker_popen(container, command, env=None, user=None, workdir=None, sh="sh", **popen_kwargs):
    """The same command started in the background: a Popen with text pipes for stdout and stderr
    (pass stderr=subprocess.STDOUT and the like to change them)."""
    popen_kwargs.setdefault("stdout", subprocess.PIPE)
    popen_kwargs.setdefault("stderr", subprocess.PIPE)
    popen_kwargs.setdefault("text", True)
    return subprocess.Popen(exec_argv(container, command, env=env, user=user, workdir=workdir, sh=sh), **popen_kwargs)


def parse_json_output(stdout, what="the script"):
    """The JSON document a script printed (its whole stdout, or failing that its last line)."""
    text = (stdout or "").strip()
    try:
        return json.loads(text)
    except ValueError:
        lines = text.splitlines()
        try:
            return json.loads(lines[-1]) if lines else json.loads(text)
        except ValueError:
            raise AssertionError(f"{what} printed no JSON:\n{_tail(stdout)}") from None


def run_script(container, script, *args, interpreter="python3", env=None, user=None, timeout=120):
    """Run a script in a container once and return the JSON it printed on stdout."""
    proc = docker_exec(container, [interpreter, "-c", script, *args], env=env, user=user, timeout=timeout)
    return parse_json_output(proc.stdout, f"{container}: {interpreter} script")


def stop_file(directory="/run"):
    """A fresh path in a container whose creation tells a RemoteScript to stop."""
    return f"{directory}/stop-{os.getpid()}-{time.monotonic_ns()}"


class RemoteScript:
    """A script running in a container until its stop file exists, then printing one JSON document:
    a client that keeps sending requests while a drill runs. The script gets the stop file's path
    among its arguments (where it expects it); `finish()` creates the file and returns the JSON."""

    def __init__(self, container, script, *args, stop_file, warmup=0.0, interpreter="python3", env=None, user=None):
        self.container, self.stop_file = container, stop_file
        self.proc = docker_popen(container, [interpreter, "-c", script, *args], env=env, user=user)
        time.sleep(warmup)  # let it run before the drill starts

    def finish(self, cooldown=0.0, timeout=60):
        time.sleep(cooldown)  # and keep running after it
        docker_exec(self.container, ["touch", self.stop_file])
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, f"{self.container}: script rc={self.proc.returncode}\n{_tail(err)}"
        return parse_json_output(out, f"{self.container}: script")


# ---------------------------------------------------------------------------------------------
# Ansible
# ---------------------------------------------------------------------------------------------


def inventory_hosts(directory):
    """The groups and host variables of an inventory directory's hosts.yml (group_vars aside):
    ({group: [host, ...] sorted}, {host: its variables}). A host listed again in another group
    without variables keeps the ones it was given."""
    with open(os.path.join(directory, "hosts.yml"), encoding="utf-8") as fh:
        children = yaml.safe_load(fh)["all"]["children"]
    groups = {group: sorted((spec or {}).get("hosts") or {}) for group, spec in children.items()}
    hostvars = {name: hv for spec in children.values() for name, hv in ((spec or {}).get("hosts") or {}).items() if hv}
    return groups, hostvars


def ansible_bin(name="ansible-playbook"):
    """An Ansible command of the toolchain running these tests (next to its Python), else on PATH."""
    local = os.path.join(os.path.dirname(sys.executable), name)
    return local if os.path.exists(local) else (shutil.which(name) or name)


def ansible_env(**overrides):
    """The environment of an Ansible subprocess: this project's ansible.cfg and collections path, no
    colour (tests read the output), then the given overrides."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=os.path.join(PROJECT, "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=os.path.join(PROJECT, ".collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def molecule_inventory():
    path = os.environ.get("MOLECULE_INVENTORY_FILE")
    assert path, "MOLECULE_INVENTORY_FILE is not set: run the tests through `molecule verify`"
    return path


def scenario_dir():
    path = os.environ.get("MOLECULE_SCENARIO_DIRECTORY")
    assert path, "MOLECULE_SCENARIO_DIRECTORY is not set: run the tests through `molecule verify`"
    return path


def playbook_argv(playbook, *args, inventory=None):
    """ansible-playbook argv. inventory: a path or a list of paths (default: Molecule's inventory);
    a relative playbook path is one of the scenario's playbooks."""
    if inventory is None:
        inventory = [molecule_inventory()]
    elif isinstance(inventory, (str, os.PathLike)):
        inventory = [inventory]
    if not os.path.isabs(playbook):
        playbook = os.path.join(scenario_dir(), playbook)
    argv = [ansible_bin("ansible-playbook")]
    for path in inventory:
        argv += ["-i", str(path)]
    return [*argv, str(playbook), *map(str, args)]


# One line per host after PLAY RECAP: "<host> : ok=N changed=N unreachable=N failed=N skipped=N ..."
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_RECAP_HEADER = re.compile(r"^PLAY RECAP\b", re.M)
_RECAP_LINE = re.compile(r"^(?P<host>\S+?)\s*:\s+(?P<counts>ok=\d+(?:\s+[a-z_]+=\d+)*)\s*$")
RECAP_KEYS = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")


def parse_recap(text):
    """{host: {ok, changed, unreachable, failed, skipped, rescued, ignored}} from the last PLAY RECAP
    of an ansible-playbook output, coloured or not; {} when there is none. Only the lines right after
    the header count, so a task's output that looks like a recap line does not."""
    text = _ANSI.sub("", text or "").replace("\r\n", "\n")
    headers = list(_RECAP_HEADER.finditer(text))
    if not headers:
        return {}
    recap = {}
    for line in text[headers[-1].end() :].split("\n")[1:]:
        match = _RECAP_LINE.match(line)
        if not match:
            if recap or line.strip():
                break  # the recap block ended
            continue
        counts = {key: int(value) for key, value in re.findall(r"([a-z_]+)=(\d+)", match["counts"])}
        if not {"ok", "changed", "unreachable", "failed"} <= counts.keys():
            break
        recap[match["host"]] = {key: counts.get(key, 0) for key in RECAP_KEYS}
    return recap


class Run:
    """The outcome of one ansible-playbook run: rc, stdout, stderr, output (both), seconds and the
    recap per host."""

    def __init__(self, rc, stdout, seconds=0.0, stderr="", argv=()):
        self.rc, self.stdout, self.stderr, self.seconds = rc, stdout or "", stderr or "", seconds
        self.argv = list(argv)
        self.output = self.stdout + self.stderr
        self.recap = parse_recap(self.output)

    @property
    def command(self):
        """The command line that ran (the binary's name without its directory)."""
        return " ".join([os.path.basename(self.argv[0]), *self.argv[1:]]) if self.argv else ""

    def _recap_or_fail(self):
        assert self.recap, f"no PLAY RECAP in the output (rc={self.rc}):\n{self.tail()}"
        return self.recap

    def host(self, name):
        """The recap counts of one host; fails the test when that host has none."""
        shown = sorted(self.recap)
        assert name in self.recap, f"{name} is not in the PLAY RECAP {shown} (rc={self.rc}):\n{self.tail()}"
        return self.recap[name]

    @property
    def changed(self):
        """changed= summed over every host (there must be a recap)."""
        return sum(h["changed"] for h in self._recap_or_fail().values())

    @property
    def failed(self):
        """failed= plus unreachable= summed over every host (there must be a recap)."""
        return sum(h["failed"] + h["unreachable"] for h in self._recap_or_fail().values())

    def tail(self, chars=4000):
        return self.output[-chars:]

    def __repr__(self):
        return f"<Run rc={self.rc} {self.seconds:.1f}s {self.command!r} recap={self.recap}>"


def play(playbook, *args, inventory=None, cwd=PROJECT, timeout=900, env=None):
    """Run ansible-playbook as an operator would and return its Run (kept in OUTPUTS too).

    inventory: Molecule's by default, or a path, or a list of paths; env: ansible_env() by default
    (pass ansible_env(SOME_OPTION=...) to add to it)."""
    argv = playbook_argv(playbook, *args, inventory=inventory)
    started = time.monotonic()
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ansible_env() if env is None else env,
        cwd=cwd,
        check=False,
    )
    result = Run(proc.returncode, proc.stdout, time.monotonic() - started, proc.stderr, argv)
    OUTPUTS.append(result.output)
    return result


# ---------------------------------------------------------------------------------------------
# figures printed at the end of the run
# ---------------------------------------------------------------------------------------------


def record(name, value):
    """A figure a test measured (a duration, a count), printed at the end of the run."""
    FIGURES[name] = value


def note(section, line):
    """A line printed at the end of the run under its own heading (a scanner's findings, say)."""
    SECTIONS.setdefault(section, []).append(str(line))


def print_figures(terminalreporter, title, width=60):
    """Print the recorded figures under title, then every noted section; nothing when empty."""
    if FIGURES:
        terminalreporter.write_sep("=", title)
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name:<{width}} {value}")
    for section, lines in SECTIONS.items():
        terminalreporter.write_sep("=", section)
        for line in lines:
            terminalreporter.write_line(line)


def terminal_summary(title, width=60):
    """A pytest_terminal_summary hook printing the figures: in a conftest.py,
    `pytest_terminal_summary = labkit.terminal_summary("certbot figures")`."""

    def pytest_terminal_summary(terminalreporter):
        print_figures(terminalreporter, title, width=width)

    return pytest_terminal_summary
