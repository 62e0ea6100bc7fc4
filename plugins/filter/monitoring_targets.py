# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Prometheus scrape and probe targets of every job, derived from the inventory groups, for the
monitoring role's prometheus.yml (each job's static_configs). Documentation: monitoring_targets.yml."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


from ansible.errors import AnsibleFilterError

from ansible_collections.ywmessaging.scaling.plugins.module_utils.inventory_values import first_set, hostport, unset

# job name -> (inventory group key, exporter port key); the backend jobs are built apart.
EXPORTER_JOBS = (
    ("node", None, "node"),
    ("pgbouncer", "pgbouncer", "pgbouncer"),
    ("nginx", "lb", "nginx"),
    ("postgres", "postgresql", "postgres"),
    ("redis", "redis", "redis"),
    ("prometheus", "monitoring", "prometheus"),
    ("alertmanager", "monitoring", "alertmanager"),
)
GROUP_KEYS = ("pgbouncer", "backend", "lb", "postgresql", "redis", "monitoring")
PORT_KEYS = ("node", "pgbouncer", "nginx", "postgres", "redis", "prometheus", "alertmanager")


def _port(value, what):
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise AnsibleFilterError("monitoring_targets: %s must be a port 1-65535, got %r" % (what, value))
    return port


def monitoring_targets(hostvars, groups, group_names, ports, backend_port=3000, health_path="/health",
                       probe_urls=None):  # fmt: skip
    """One list of target groups (static_configs) per job (see monitoring_targets.yml)."""
    missing = [key for key in GROUP_KEYS if unset((group_names or {}).get(key))]
    missing += ["port of %s" % key for key in PORT_KEYS if unset((ports or {}).get(key))]
    if missing:
        raise AnsibleFilterError("monitoring_targets: missing %s" % ", ".join(missing))
    if not str(health_path).startswith("/"):
        raise AnsibleFilterError("monitoring_targets: health_path must start with /, got %r" % (health_path,))

    def members(key):
        hosts = (groups or {}).get(group_names[key]) or []
        for host in hosts:
            if host not in hostvars:
                raise AnsibleFilterError("monitoring_targets: %s is not in the inventory" % host)
        return list(hosts)

    def address(host):
        hv = hostvars[host]
        return first_set(hv.get("monitoring_address"), hv.get("ansible_host"), host)

    def target(host, port, **labels):
        return {"targets": [hostport(address(host), port)], "labels": dict(labels, host=host)}

    every_host = []
    for key in GROUP_KEYS:
        every_host += [host for host in members(key) if host not in every_host]

    jobs = {}
    for job, group_key, port_key in EXPORTER_JOBS:
        hosts = every_host if group_key is None else members(group_key)
        port = _port(ports[port_key], "the %s port" % port_key)
        jobs[job] = [target(host, port) for host in hosts]

    backend_default = _port(backend_port, "backend_port")
    jobs["backend"] = []
    jobs["backend_health"] = []
    for host in members("backend"):
        own_port = hostvars[host].get("backend_node_port")
        port = _port(first_set(own_port, backend_default), "backend_node_port of %s" % host)
        jobs["backend"].append(target(host, port))
        url = "http://%s%s" % (hostport(address(host), port), health_path)
        jobs["backend_health"].append({"targets": [url], "labels": {"host": host}})

    jobs["balancer_https"] = []
    for url in probe_urls or []:
        if not str(url).startswith("https://"):
            raise AnsibleFilterError("monitoring_targets: balancer probe URLs must be https://, got %r" % url)
        jobs["balancer_https"].append({"targets": [url], "labels": {"host": str(url).split("/")[2]}})
    return jobs


class FilterModule(object):
    def filters(self):
        return {"monitoring_targets": monitoring_targets}
