"""Real BIND on loopback for the integration tests that change DNS (the dns_record role and the
playbooks that use it): a primary that takes TSIG-signed updates and a secondary that never follows
it (a lagging or broken transfer), on two ports of 127.0.0.1, both answering the Phase 1 records
(api A 192.0.2.10, AAAA 2001:db8::10) at the start. Tests take the `bind_servers` fixture (conftest.py)."""

import base64
import os
import shutil
import socket
import subprocess
import time

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import pytest

NAMED = shutil.which("named") or "/usr/sbin/named"
ZONE = "example.test"
KEY = "ywm-update"
PHASE1 = {"A": ["192.0.2.10"], "AAAA": ["2001:db8::10"]}

NAMED_CONF = """
options {
    directory "%(dir)s";
    pid-file "%(dir)s/named.pid";
    session-keyfile "%(dir)s/session.key";
    managed-keys-directory "%(dir)s";
    listen-on port %(port)d { %(address)s; };
    listen-on-v6 { none; };
    recursion no;
    dnssec-validation no;
    notify no;
};
controls { };
key "%(key)s" { algorithm hmac-sha256; secret "%(secret)s"; };
zone "%(zone)s" { type primary; file "%(dir)s/zone.db"; %(update)s };
"""

ZONE_DB = """$TTL 300
@       IN SOA ns1.%(zone)s. hostmaster.%(zone)s. 1 3600 600 86400 60
        IN NS  ns1.%(zone)s.
ns1     IN A   127.0.0.1
api     IN A   192.0.2.10
api     IN AAAA 2001:db8::10
"""


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answer(address, port, rdtype, name="api." + ZONE, timeout=2):
    """What the server itself answers (no resolver, no cache), sorted."""
    reply = dns.query.udp(dns.message.make_query(name, rdtype), address, port=port, timeout=timeout)
    return sorted(
        item.to_text() for rrset in reply.answer for item in rrset if rrset.rdtype == dns.rdatatype.from_text(rdtype)
    )


class Servers:
    """The primary (updates with the key) and the stale secondary (no updates), each on its own port."""

    def __init__(self, base):
        self.secret = base64.b64encode(os.urandom(32)).decode()
        self.port, self.stale_port = free_port(), free_port()
        self.procs = []
        for name, port, update in (
            ("primary", self.port, "allow-update { key %s; };" % KEY),
            ("stale", self.stale_port, ""),
        ):
            where = base / name
            where.mkdir()
            values = {"dir": where, "port": port, "address": "127.0.0.1", "key": KEY, "secret": self.secret}
            values.update(zone=ZONE, update=update)
            (where / "named.conf").write_text(NAMED_CONF % values)
            (where / "zone.db").write_text(ZONE_DB % values)
            log = open(where / "named.log", "w", encoding="utf-8")  # noqa: SIM115 - closed with the process
            self.procs.append(
                (subprocess.Popen([NAMED, "-g", "-c", str(where / "named.conf")], stdout=log, stderr=log), log)
            )
        deadline = time.monotonic() + 30
        for port in (self.port, self.stale_port):
            while True:
                try:
                    # a query sent before named listens is lost without an error: ask again soon
                    if answer("127.0.0.1", port, "A", timeout=0.2) == PHASE1["A"]:
                        break
                except (OSError, dns.exception.DNSException):
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail("named did not answer on 127.0.0.1#%d: %s" % (port, self.logs()))
                time.sleep(0.05)

    def logs(self):
        return " | ".join(open(log.name, encoding="utf-8").read()[-1500:] for _proc, log in self.procs)

    def ttl(self, rdtype="A", name="api." + ZONE):
        """The TTL the primary gives the name's records of a type (None without any)."""
        reply = dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=self.port, timeout=2)
        return next((rrset.ttl for rrset in reply.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype)), None)

    def records(self, port=None):
        return {rdtype: answer("127.0.0.1", port or self.port, rdtype) for rdtype in ("A", "AAAA")}

    def stop(self):
        for proc, log in self.procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def start(base):
    """Both servers, answering, with their files under ``base``; stop() them when done."""
    if not os.access(NAMED, os.X_OK):
        pytest.fail("BIND's named is missing: ./run setup installs it (Debian package bind9)")
    return Servers(base)
