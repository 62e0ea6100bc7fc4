"""The nginx_lb scenario's tests drive the lab with molecule/_shared/labkit.py (put on sys.path here:
Molecule runs pytest from this directory, which is not a package); nginx_lb_lab.py holds this
scenario's own helpers. The drills print what they measure (the verifier runs pytest with -s)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "_shared"))
