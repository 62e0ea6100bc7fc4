"""One of the project's playbooks run for real on the controller, as the integration tests of the
playbooks do: `--limit localhost`, the venv's interpreter, the reports in a directory of the test's."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def controller_play(playbook, inventory, reports, *extra):
    """ansible-playbook <ROOT>/<playbook> -i <inventory> --limit localhost <extra>; the inventory is a
    dict (written next to the reports) or a path. Returns the CompletedProcess with `output`
    (stdout + stderr) and `text` (its whitespace folded to single spaces)."""
    if isinstance(inventory, dict):
        path = os.path.join(os.path.dirname(str(reports)), "hosts.yml")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(inventory, fh)
        inventory = path
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    argv = [
        os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory),
        os.path.join(ROOT, playbook), "-e", f"ansible_python_interpreter={sys.executable}",
        "-e", f"deploy_report_dir={reports}", "--limit", "localhost", *extra,
    ]  # fmt: skip
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    proc.output = proc.stdout + proc.stderr
    proc.text = " ".join(proc.output.split())
    return proc
