"""The lab: real Debian systemd hosts that install packages through the cache and reach each other."""

import os
import re

import pytest

LAB_HOSTS = {"lab-bookworm": "bookworm", "lab-trixie": "trixie"}
CACHE_LOG = "/var/log/ywlab-acng/apt-cacher.log"


@pytest.fixture
def name(host):
    return host.backend.get_hostname()


def test_runs_the_expected_debian_release(host, name):
    assert host.system_info.distribution == "debian"
    assert host.system_info.codename == LAB_HOSTS[name]


def test_systemd_is_pid_1_and_booted_without_failed_units(host):
    assert host.process.get(pid=1).comm == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), state
    failed = host.run("systemctl list-units --failed --no-legend --plain").stdout.strip()
    assert failed == "", f"failed units: {failed}"


def test_packages_come_through_the_lab_cache(host, name):
    assert host.package("jq").is_installed
    proxy = host.run("apt-config dump Acquire::http::Proxy").stdout
    assert "3143" in proxy, proxy
    # The cache on the controller logged the .deb this host downloaded, from this host's address.
    address = host.interface("eth0").addresses[0]
    with open(CACHE_LOG, encoding="utf-8", errors="replace") as fh:
        lines = [line for line in fh if "/jq_" in line and ".deb" in line]
    assert any(f"|{address}|" in line for line in lines), f"no jq .deb fetched by {address} in {CACHE_LOG}"


@pytest.mark.parametrize("peer", sorted(LAB_HOSTS))
def test_hosts_reach_each_other_by_inventory_hostname(host, name, peer):
    resolved = host.run(f"getent hosts {peer}")
    assert resolved.rc == 0, resolved.stderr
    address = resolved.stdout.split()[0]
    assert re.match(r"^172\.30\.76\.\d+$", address), address
    ping = host.run(f"ping -c 1 -W 2 {peer}")
    assert ping.rc == 0, ping.stdout + ping.stderr


def test_controller_trusted_cas_are_trusted_on_the_host(host):
    for path in sorted(os.listdir("/usr/local/share/ca-certificates")):
        if path.endswith(".crt"):
            assert host.file(f"/usr/local/share/ca-certificates/{path}").exists
            assert host.file(f"/etc/ssl/certs/{path[:-4]}.pem").is_symlink
