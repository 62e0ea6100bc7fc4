# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The balancer's upstream servers, by one rule, for the nginx_lb role and the playbooks that check
or drill what it balances (verify.yml, failover.yml). Documentation: upstream_servers.yml."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible.errors import AnsibleFilterError

from ansible_collections.ywmessaging.scaling.plugins.module_utils.inventory_values import first_set, unset


def _ip(address):
    try:
        return ipaddress.ip_address(str(address))
    except ValueError:
        return None


def _logged(address, port, facts):
    """address:port as nginx writes $upstream_addr: an IP literal as given, a DNS name as the address
    it resolves to (the host's default IPv4 from its facts, when known)."""
    ip = _ip(address)
    if ip is None:
        ip = _ip(((facts or {}).get("ansible_default_ipv4") or {}).get("address"))
    if ip is None:
        return None
    return ("[%s]:%s" if ip.version == 6 else "%s:%s") % (ip, port)


def upstream_servers(hostvars, hosts, default_port=3000, default_weight=1, listed=None):
    """The upstream servers: ``listed`` (nginx_lb_upstream_servers) when not empty, else one per
    host of ``hosts`` from its own variables (see upstream_servers.yml)."""
    servers = []
    if listed:
        for entry in listed:
            if not isinstance(entry, dict) or unset(entry.get("address")):
                raise AnsibleFilterError("upstream_servers: every listed server needs an address, got %r" % (entry,))
            port = first_set(entry.get("port"), default_port)
            servers.append({
                "name": first_set(entry.get("name"), "%s:%s" % (entry["address"], port)),
                "address": entry["address"],
                "port": port,
                "weight": first_set(entry.get("weight"), default_weight),
                "backup": bool(entry.get("backup", False)),
                "host": None,
                "logged": _logged(entry["address"], port, None),
            })  # fmt: skip
        return servers
    for host in hosts or []:
        if host not in hostvars:
            raise AnsibleFilterError("upstream_servers: %s is not in the inventory" % host)
        hv = hostvars[host]
        address = first_set(hv.get("nginx_lb_backend_address"), hv.get("ansible_host"), host)
        port = first_set(hv.get("nginx_lb_backend_port"), hv.get("backend_node_port"), default_port)
        servers.append({
            "name": host,
            "address": address,
            "port": port,
            "weight": first_set(hv.get("nginx_lb_backend_weight"), default_weight),
            "backup": bool(hv.get("nginx_lb_backend_backup", False)),
            "host": host,
            "logged": _logged(address, port, hv),
        })  # fmt: skip
    return servers


class FilterModule(object):
    def filters(self):
        return {"upstream_servers": upstream_servers}
