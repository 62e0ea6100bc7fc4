# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""An address and a port as a listen flag, a scrape target or a URL wants them: an IPv6 literal in
brackets. Documentation: hostport.yml."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.ywmessaging.scaling.plugins.module_utils.inventory_values import hostport as _hostport
from ansible_collections.ywmessaging.scaling.plugins.module_utils.inventory_values import unset


def hostport(address, port=None):
    """``address:port`` (or the bracketed address alone when ``port`` is not given)."""
    if unset(address) or not isinstance(address, str):
        raise AnsibleFilterError("hostport: expects an address or host name, got %r" % (address,))
    if port is not None:
        try:
            number = int(port)
        except (TypeError, ValueError):
            number = 0
        if not 0 < number < 65536:
            raise AnsibleFilterError("hostport: the port must be 1-65535, got %r" % (port,))
        port = number
    return _hostport(address, port)


class FilterModule(object):
    def filters(self):
        return {"hostport": hostport}
