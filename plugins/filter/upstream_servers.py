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


def _addr(ip, port):
    return ("[%s]:%s" if ip.version == 6 else "%s:%s") % (ip, port)


def _logged_all(address, port, facts, resolved):
    """Every address:port nginx may write in $upstream_addr for this server. nginx resolves a DNS
    name once, when it loads its configuration, and balances over every address the name has: those
    addresses as the balancer resolves them (``resolved``) when known, else the host's default IPv4
    from its facts; an IP literal is used as given. Empty when unknown (never a guess)."""
    ip = _ip(address)
    if ip is not None:
        return [_addr(ip, port)]
    names = (resolved or {}).get(str(address))
    if names:
        found = []
        for name in names:
            each = _ip(name)
            if each is None:
                raise AnsibleFilterError("upstream_servers: %s resolved to %r, not an IP address" % (address, name))
            if _addr(each, port) not in found:
                found.append(_addr(each, port))
        return found
    ip = _ip(((facts or {}).get("ansible_default_ipv4") or {}).get("address"))
    return [_addr(ip, port)] if ip is not None else []


def _with_logged(server, facts, resolved):
    server["named"] = _ip(server["address"]) is None
    server["logged_all"] = _logged_all(server["address"], server["port"], facts, resolved)
    server["logged"] = server["logged_all"][0] if server["logged_all"] else None
    return server


def upstream_servers(hostvars, hosts, default_port=3000, default_weight=1, listed=None, resolved=None):
    """The upstream servers: ``listed`` (nginx_lb_upstream_servers) when not empty, else one per
    host of ``hosts`` from its own variables (see upstream_servers.yml). ``resolved`` maps DNS names
    to the addresses the balancer resolves them to."""
    if resolved is not None and not isinstance(resolved, dict):
        raise AnsibleFilterError(
            "upstream_servers: resolved must map names to lists of addresses, got %r" % (resolved,)
        )
    servers = []
    if listed:
        for entry in listed:
            if not isinstance(entry, dict) or unset(entry.get("address")):
                raise AnsibleFilterError("upstream_servers: every listed server needs an address, got %r" % (entry,))
            port = first_set(entry.get("port"), default_port)
            servers.append(_with_logged({
                "name": first_set(entry.get("name"), "%s:%s" % (entry["address"], port)),
                "address": entry["address"],
                "port": port,
                "weight": first_set(entry.get("weight"), default_weight),
                "backup": bool(entry.get("backup", False)),
                "host": None,
            }, None, resolved))  # fmt: skip
        return servers
    for host in hosts or []:
        if host not in hostvars:
            raise AnsibleFilterError("upstream_servers: %s is not in the inventory" % host)
        hv = hostvars[host]
        address = first_set(hv.get("nginx_lb_backend_address"), hv.get("ansible_host"), host)
        port = first_set(hv.get("nginx_lb_backend_port"), hv.get("backend_node_port"), default_port)
        servers.append(_with_logged({
            "name": host,
            "address": address,
            "port": port,
            "weight": first_set(hv.get("nginx_lb_backend_weight"), default_weight),
            "backup": bool(hv.get("nginx_lb_backend_backup", False)),
            "host": host,
        }, hv, resolved))  # fmt: skip
    return servers


class FilterModule(object):
    def filters(self):
        return {"upstream_servers": upstream_servers}
