# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hostport: the listen flags, scrape targets and URLs of the monitoring role and verify.yml."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ywmessaging.scaling.plugins.filter.hostport import hostport


def test_an_ipv6_literal_is_bracketed_once_and_the_rest_is_given_as_is():
    assert hostport("2001:db8::1", 9090) == "[2001:db8::1]:9090"
    assert hostport("[2001:db8::1]", "9090") == "[2001:db8::1]:9090"
    assert hostport("10.0.1.50", 9093) == "10.0.1.50:9093"
    assert hostport("monitoring-1.example.com", 9094) == "monitoring-1.example.com:9094"


def test_without_a_port_the_address_alone_as_a_url_wants_it():
    assert hostport("fd00::51") == "[fd00::51]"
    assert hostport("10.0.1.50") == "10.0.1.50"


@pytest.mark.parametrize("address, port", [("", 9090), (None, 9090), ("10.0.1.50", 0), ("10.0.1.50", "http"),
                                           ("10.0.1.50", 65536)])  # fmt: skip
def test_no_address_or_a_bad_port_is_an_error_naming_the_value(address, port):
    with pytest.raises(AnsibleFilterError, match="hostport: "):
        hostport(address, port)
