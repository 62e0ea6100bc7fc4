# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Reading values from an inventory: a variable that is absent, null or an empty string counts as not
set (an operator blanks a value in group_vars to fall back to the default); an address as a URL or a
listen flag wants it, an IPv6 literal in brackets."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def unset(value):
    """True for a value the inventory did not really set: None or an empty string."""
    return value is None or value == ""


def first_set(*values):
    """The first of the values that is set, else None."""
    for value in values:
        if not unset(value):
            return value
    return None


def hostport(address, port=None):
    """``address:port``, or the address alone without a port, with an IPv6 literal in brackets
    (``[2001:db8::1]:9090``); a host name or an IPv4 address as given, a bracketed one left alone."""
    host = str(address).strip()
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host
    return host if port is None else "%s:%s" % (host, port)
