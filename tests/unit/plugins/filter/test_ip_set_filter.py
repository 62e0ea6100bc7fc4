# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ip_set: what dns_record publishes and compares with what the servers answer."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ywmessaging.scaling.plugins.filter.ip_set import ip_set


def test_canonical_sorted_and_unique():
    assert ip_set(["192.0.2.20", "192.0.2.3", "192.0.2.20"])["addresses"] == ["192.0.2.3", "192.0.2.20"]
    assert ip_set(["2001:DB8:0::1", "2001:db8::1", "fd00::a"], 6) == {
        "addresses": ["2001:db8::1", "fd00::a"],
        "invalid": [],
    }


def test_what_is_not_an_address_of_the_version_is_returned_apart():
    result = ip_set(["192.0.2.1", "2001:db8::1", "api.example.com", "300.1.1.1", ""], 4)
    assert result == {"addresses": ["192.0.2.1"], "invalid": ["2001:db8::1", "api.example.com", "300.1.1.1", ""]}
    assert ip_set(["192.0.2.1"], "6")["invalid"] == ["192.0.2.1"]
    assert ip_set(None) == {"addresses": [], "invalid": []}


def test_bad_calls_are_refused():
    with pytest.raises(AnsibleFilterError, match="version must be 4 or 6"):
        ip_set([], 5)
    with pytest.raises(AnsibleFilterError, match="expects a list"):
        ip_set("192.0.2.1")
