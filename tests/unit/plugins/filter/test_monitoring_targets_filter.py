# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""monitoring_targets: every job's targets come from the inventory groups, each host named once."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ywmessaging.scaling.plugins.filter.monitoring_targets import monitoring_targets

GROUP_NAMES = {"pgbouncer": "pgbouncer", "backend": "api", "lb": "lb", "postgresql": "postgresql", "redis": "redis",
               "monitoring": "monitoring"}  # fmt: skip
PORTS = {"node": 9100, "pgbouncer": 9127, "nginx": 9113, "postgres": 9187, "redis": 9121, "prometheus": 9090,
         "alertmanager": 9093}  # fmt: skip
HOSTVARS = {
    "pgb": {"ansible_host": "10.0.0.20"},
    "b1": {"ansible_host": "10.0.0.31"},
    "b2": {"ansible_host": "10.0.0.32", "backend_node_port": 4000},
    "b3": {"ansible_host": "10.0.0.33", "monitoring_address": "fd00::33"},
    "lb1": {"ansible_host": "lb1.internal"},
    "mon": {},
    "both": {"ansible_host": "10.0.0.50"},
}
GROUPS = {
    "all": list(HOSTVARS),
    "pgbouncer": ["pgb", "both"],
    "api": ["b1", "b2", "b3"],
    "lb": ["lb1"],
    "redis": ["both"],  # a host in two groups
    "monitoring": ["mon"],
}


def jobs(**kwargs):
    return monitoring_targets(HOSTVARS, GROUPS, GROUP_NAMES, PORTS, **kwargs)


def flat(groups):
    return [(group["targets"][0], group["labels"]["host"]) for group in groups]


def test_exporter_jobs_follow_the_groups():
    j = jobs()
    assert flat(j["pgbouncer"]) == [("10.0.0.20:9127", "pgb"), ("10.0.0.50:9127", "both")]
    assert flat(j["nginx"]) == [("lb1.internal:9113", "lb1")]
    assert flat(j["redis"]) == [("10.0.0.50:9121", "both")]
    assert flat(j["prometheus"]) == [("mon:9090", "mon")]  # no ansible_host: the inventory name
    assert flat(j["alertmanager"]) == [("mon:9093", "mon")]
    assert j["postgres"] == []  # a group the inventory lacks: no target, no error


def test_node_exporter_on_every_host_once():
    hosts = [host for _target, host in flat(jobs()["node"])]
    assert sorted(hosts) == sorted(["pgb", "both", "b1", "b2", "b3", "lb1", "mon"])
    assert len(hosts) == len(set(hosts))
    assert ("[fd00::33]:9100", "b3") in flat(jobs()["node"])  # monitoring_address wins, IPv6 bracketed


def test_backends_on_the_port_they_listen_on():
    j = jobs(backend_port=3000, health_path="/health")
    assert flat(j["backend"]) == [("10.0.0.31:3000", "b1"), ("10.0.0.32:4000", "b2"), ("[fd00::33]:3000", "b3")]
    assert flat(j["backend_health"]) == [
        ("http://10.0.0.31:3000/health", "b1"),
        ("http://10.0.0.32:4000/health", "b2"),
        ("http://[fd00::33]:3000/health", "b3"),
    ]
    assert flat(jobs(backend_port=8080)["backend"])[0] == ("10.0.0.31:8080", "b1")


def test_balancer_probes_are_https_urls_labelled_with_their_host():
    j = jobs(probe_urls=["https://api.example.com/health"])
    assert flat(j["balancer_https"]) == [("https://api.example.com/health", "api.example.com")]
    assert jobs()["balancer_https"] == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"probe_urls": ["http://api.example.com/health"]}, "must be https://"),
        ({"health_path": "health"}, "must start with /"),
        ({"backend_port": 0}, "backend_port must be a port"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        jobs(**kwargs)


def test_missing_settings_and_unknown_hosts_are_named():
    with pytest.raises(AnsibleFilterError, match="missing redis, port of node"):
        monitoring_targets(HOSTVARS, GROUPS, dict(GROUP_NAMES, redis=""), dict(PORTS, node=None))
    with pytest.raises(AnsibleFilterError, match="ghost is not in the inventory"):
        monitoring_targets(HOSTVARS, dict(GROUPS, lb=["ghost"]), GROUP_NAMES, PORTS)
    with pytest.raises(AnsibleFilterError, match="backend_node_port of b1"):
        monitoring_targets(dict(HOSTVARS, b1={"backend_node_port": "x"}), GROUPS, GROUP_NAMES, PORTS)
