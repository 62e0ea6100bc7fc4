# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: port_matrix
short_description: Check from this host that TCP ports on other hosts are open or at least reachable
version_added: "0.1.0"
description:
  - Opens a TCP connection from the managed host to every target at the same time and classifies the
    outcome as C(open) (something listens), C(refused) (the path is open, nothing listens yet),
    C(filtered) (no answer before the timeout - a firewall or security group drops it),
    C(unreachable) (no route) or C(unresolved) (the name does not resolve).
  - A target expects C(open) (an existing service, such as PostgreSQL) or C(reachable) (C(open) or
    C(refused), for a port whose service this deployment is about to install, such as PgBouncer's).
  - Run it on the host that will use each path (delegate or target that host), so a security group
    between two servers is tested from the right side.
  - Fails with one table listing every target whose state its expectation does not accept.
author:
  - ywmessaging.scaling contributors (@ywmessaging)
extends_documentation_fragment:
  - ywmessaging.scaling.read_only
options:
  targets:
    description: The ports to probe.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: What the path is for, shown in results and in the failure table (e.g. C(backend -> pgbouncer)).
        type: str
      host:
        description: Host name or address to connect to.
        type: str
        required: true
      port:
        description: TCP port.
        type: int
        required: true
      expect:
        description: C(open) needs a listener; C(reachable) accepts C(open) or C(refused).
        type: str
        choices: [open, reachable]
        default: open
  timeout:
    description: Seconds to wait for each connection. A target that does not answer in time is C(filtered).
    type: float
    default: 3
  max_workers:
    description: How many targets to probe at the same time.
    type: int
    default: 32
"""

EXAMPLES = r"""
- name: Backends can reach PgBouncer and Redis (run on each backend)
  ywmessaging.scaling.port_matrix:
    targets:
      - {name: backend -> pgbouncer, host: 10.0.0.20, port: 6432, expect: reachable}
      - {name: backend -> redis, host: 10.0.0.30, port: 6379}

- name: Probe from every backend, collect the results, and report them together later
  ywmessaging.scaling.port_matrix:
    targets: "{{ preflight_targets }}"
    timeout: 2
  register: probes
  failed_when: false
"""

RETURN = r"""
results:
  description: One entry per target, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The target's name.
      type: str
    host:
      description: Host probed.
      type: str
    port:
      description: Port probed.
      type: int
    expect:
      description: What the target expected.
      type: str
    state:
      description: C(open), C(refused), C(filtered), C(unreachable) or C(unresolved).
      type: str
      sample: refused
    ok:
      description: Whether the state is one the expectation accepts.
      type: bool
    latency_ms:
      description: Time until the connection succeeded or failed.
      type: float
    detail:
      description: The socket error, empty when the port is open.
      type: str
problems:
  description: The table of targets that failed their expectation, empty when none did.
  returned: always
  type: str
"""

import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ywmessaging.scaling.plugins.module_utils.port_probe import (
    probe_all,
    problem_table,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            targets=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    name=dict(type="str"),
                    host=dict(type="str", required=True),
                    port=dict(type="int", required=True),
                    expect=dict(type="str", choices=["open", "reachable"], default="open"),
                ),
            ),
            timeout=dict(type="float", default=3),
            max_workers=dict(type="int", default=32),
        ),
        supports_check_mode=True,
    )
    bad_ports = [t for t in module.params["targets"] if not 0 < t["port"] < 65536]
    if bad_ports:
        module.fail_json(msg="targets: port must be 1-65535, got %s" % ", ".join(str(t["port"]) for t in bad_ports))
    results = probe_all(module.params["targets"], module.params["timeout"], module.params["max_workers"])
    table = problem_table(results, source=socket.gethostname())
    result = dict(changed=False, results=results, problems=table)
    if table:
        count = sum(1 for r in results if not r["ok"])
        module.fail_json(msg="%d of %d port checks failed:\n%s" % (count, len(results), table), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
