# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""upstream_servers: the one rule for what nginx_lb balances and what verify/failover expect."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ywmessaging.scaling.plugins.filter.upstream_servers import upstream_servers

HOSTVARS = {
    "b1": {"ansible_host": "10.0.0.1"},
    "b2": {"ansible_host": "b2.internal", "backend_node_port": 4000, "ansible_default_ipv4": {"address": "10.0.0.2"}},
    "b3": {"ansible_host": "10.0.0.3", "backend_node_port": 4000, "nginx_lb_backend_port": 4100,
           "nginx_lb_backend_weight": 3},
    "b4": {"nginx_lb_backend_address": "fd00::4", "ansible_host": "10.0.0.4", "nginx_lb_backend_backup": True},
    "b5": {},
}  # fmt: skip


def by_name(servers):
    return {s["name"]: s for s in servers}


def test_each_backend_from_its_own_variables():
    s = by_name(upstream_servers(HOSTVARS, ["b1", "b2", "b3", "b4", "b5"], 3000, 1))
    assert (s["b1"]["address"], s["b1"]["port"], s["b1"]["weight"]) == ("10.0.0.1", 3000, 1)
    # the port the backend_node role listens on is the port nginx must use
    assert (s["b2"]["address"], s["b2"]["port"]) == ("b2.internal", 4000)
    # an explicit balancer port for the host wins over the backend's own
    assert (s["b3"]["port"], s["b3"]["weight"]) == (4100, 3)
    assert s["b4"]["address"] == "fd00::4" and s["b4"]["backup"] is True
    assert s["b5"]["address"] == "b5" and s["b5"]["host"] == "b5"


def test_logged_is_what_nginx_writes_in_upstream_addr():
    s = by_name(upstream_servers(HOSTVARS, ["b1", "b2", "b3", "b4", "b5"]))
    assert s["b1"]["logged"] == "10.0.0.1:3000"
    assert s["b2"]["logged"] == "10.0.0.2:4000"  # a DNS name: the host's address from its facts
    assert s["b3"]["logged"] == "10.0.0.3:4100"
    assert s["b4"]["logged"] == "[fd00::4]:3000"
    assert s["b5"]["logged"] is None  # a name and no facts: unknown, never a guess


def test_the_balancers_default_port_and_weight_apply_when_the_host_sets_none():
    s = by_name(upstream_servers(HOSTVARS, ["b1"], 8080, 5))
    assert (s["b1"]["port"], s["b1"]["weight"]) == (8080, 5)


def test_a_listed_server_list_replaces_the_hosts():
    listed = [{"address": "192.0.2.10"}, {"name": "two", "address": "api-2.internal", "port": 9000, "weight": 2,
                                          "backup": True}]  # fmt: skip
    servers = upstream_servers(HOSTVARS, ["b1", "b2"], 3000, 1, listed)
    assert [s["name"] for s in servers] == ["192.0.2.10:3000", "two"]
    assert servers[1]["port"] == 9000 and servers[1]["weight"] == 2 and servers[1]["backup"] is True
    assert servers[0]["logged"] == "192.0.2.10:3000" and servers[1]["logged"] is None


def test_errors_name_what_is_wrong():
    with pytest.raises(AnsibleFilterError, match="not in the inventory"):
        upstream_servers(HOSTVARS, ["nope"])
    with pytest.raises(AnsibleFilterError, match="needs an address"):
        upstream_servers(HOSTVARS, [], 3000, 1, [{"port": 1}])


def test_a_name_is_logged_as_every_address_the_balancer_resolves_it_to():
    listed = [{"address": "api.internal", "port": 9000}, {"address": "192.0.2.10"}]
    resolved = {"api.internal": ["10.9.0.1", "10.9.0.2", "10.9.0.1", "fd00::9"]}
    servers = upstream_servers(HOSTVARS, [], 3000, 1, listed, resolved)
    # nginx balances over every address of a name, each one logged as itself, IPv6 in brackets
    assert servers[0]["logged_all"] == ["10.9.0.1:9000", "10.9.0.2:9000", "[fd00::9]:9000"]
    assert servers[0]["logged"] == "10.9.0.1:9000"
    assert servers[1]["logged_all"] == ["192.0.2.10:3000"]  # an IP literal needs no resolving
    assert [server["named"] for server in servers] == [True, False]
    # for a host, what the balancer resolves wins over the host's own default address
    s = by_name(upstream_servers(HOSTVARS, ["b2", "b5"], 3000, 1, None, {"b2.internal": ["10.7.7.2"], "b5": []}))
    assert s["b2"]["logged_all"] == ["10.7.7.2:4000"]
    assert s["b5"]["logged_all"] == [] and s["b5"]["logged"] is None  # unresolved: unknown, not a guess


def test_resolved_must_hold_addresses():
    with pytest.raises(AnsibleFilterError, match="not an IP address"):
        upstream_servers(HOSTVARS, [], 3000, 1, [{"address": "api.internal"}], {"api.internal": ["api.internal"]})
    with pytest.raises(AnsibleFilterError, match="resolved must map names"):
        upstream_servers(HOSTVARS, ["b1"], 3000, 1, None, ["10.0.0.1"])
