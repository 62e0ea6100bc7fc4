# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A list of addresses as a set of one IP version, in canonical form, and what is not an address of
that version (for the dns_record role: what to publish, what a server answered, what to refuse).
Documentation: ip_set.yml."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible.errors import AnsibleFilterError


def ip_set(values, version=4):
    """{'addresses': sorted unique canonical addresses of IP version ``version``, 'invalid': the
    entries that are not one}."""
    if str(version) not in ("4", "6"):
        raise AnsibleFilterError("ip_set: version must be 4 or 6, got %r" % (version,))
    if values is None:
        values = []
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise AnsibleFilterError("ip_set: expects a list of addresses, got %r" % (values,))
    found, invalid = set(), []
    for value in values:
        try:
            address = ipaddress.ip_address(str(value).strip())
        except ValueError:
            invalid.append(value)
            continue
        if address.version != int(version):
            invalid.append(value)
        else:
            found.add(address)
    return {"addresses": [str(address) for address in sorted(found)], "invalid": invalid}


class FilterModule(object):
    def filters(self):
        return {"ip_set": ip_set}
