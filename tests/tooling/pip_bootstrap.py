"""Stand-in for the pip bootstrap script that `ansible-test --venv` downloads from a site this
machine cannot reach. ansible-test runs it inside each fresh, pip-less virtualenv with pip's
install arguments (e.g. `--disable-pip-version-check pip==24.2 --no-setuptools --no-wheel`).
We get pip from the interpreter's own ensurepip, then let that pip install the requested version
from the package index the machine is configured for. `./run sanity` places this file where
ansible-test looks for its cached copy."""

import subprocess
import sys

IGNORED = {"--no-setuptools", "--no-wheel"}

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
args = [arg for arg in sys.argv[1:] if arg not in IGNORED]
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *args])
