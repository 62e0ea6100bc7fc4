"""certbot scenario: the runbook's "Configure SSL certificate", "Test HTTP to HTTPS redirect" and
"Verify SSL certificate is valid", against a real ACME server (Pebble) through nginx_lb.

Runs against the load balancer (testinfra's `host`); client checks run on certbot-acme, where the lab
domain resolves to the balancer. Tests run in file order: the ACME outage drill is last, because a
Pebble restart starts a new issuing CA and forgets every account. (Every test takes the `host`
fixture so pytest keeps them in file order.)
"""

import json
import os
import re
import subprocess

import labkit
import pytest

LB = "certbot-lb"
testinfra_hosts = [LB]

DOMAIN = "api.certbot.test"
LINEAGE = f"/etc/letsencrypt/live/{DOMAIN}"
CLIENT = "certbot-acme"
ACME_URL = "https://certbot-acme:14000/dir"
ACME_ALT_URL = "https://certbot-acme-alt:14000/dir"
LAB_CA = "/etc/pebble/lab-ca.pem"
TESTSSL_SUMMARY = "testssl.sh summary"  # labkit prints this section at the end of the run
WORK = "/root/certbot-checks"  # on the client: files the checks leave there
ROOT = f"{WORK}/pebble-root.pem"  # Pebble's issuing root, fetched once
INTERMEDIATE = f"{WORK}/pebble-intermediate.pem"
TESTSSL_JSON = f"{WORK}/testssl.json"

# Runs on the client for as long as a drill lasts: one new TLS connection per request (so every
# request sees the certificate nginx serves at that moment), verified against Pebble's root.
LOAD_CLIENT = r"""
import http.client, json, os, ssl, sys, time
from cryptography import x509
domain, root, stop, limit = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
ctx = ssl.create_default_context(cafile=root)
ok = failed = 0
serials, errors = [], []
deadline = time.monotonic() + limit
while time.monotonic() < deadline and not os.path.exists(stop):
    try:
        conn = http.client.HTTPSConnection(domain, 443, context=ctx, timeout=5)
        conn.connect()
        # The certificate is read off the handshake, before the request: an answer with
        # "Connection: close" (an old worker finishing after a reload) makes http.client drop
        # conn.sock as soon as the response headers are in.
        der = conn.sock.getpeercert(binary_form=True)
        conn.request("GET", "/health")
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        serial = format(x509.load_der_x509_certificate(der).serial_number, "x")
        if not serials or serials[-1] != serial:
            serials.append(serial)
        if resp.status == 200 and json.loads(body)["status"] == "ok":
            ok += 1
        else:
            failed += 1
            errors.append(resp.status)
    except Exception as exc:
        failed += 1
        errors.append(repr(exc))
    time.sleep(0.02)
print(json.dumps({"ok": ok, "failed": failed, "serials": serials, "errors": errors[:5]}))
"""


def on(container, script, timeout=120, check=True):
    return labkit.docker_exec(container, script, timeout=timeout, check=check)


def playbook(name, *args, timeout=300):
    """Run one of this scenario's playbooks with Molecule's inventory, as an operator would: a
    labkit.Run, whose recap for the balancer is run.host(LB)."""
    return labkit.play(name, *args, timeout=timeout)


def lineage_serial(host):
    return host.check_output(f"openssl x509 -in {LINEAGE}/cert.pem -noout -serial").split("=")[1].lower()


def served_serial():
    out = on(
        CLIENT,
        f"openssl s_client -connect {DOMAIN}:443 -servername {DOMAIN} </dev/null 2>/dev/null"
        " | openssl x509 -noout -serial",
    ).stdout
    return out.strip().split("=")[1].lower().lstrip("0")


def issued_by_pebble():
    """How many certificates Pebble has issued since it started (its journal says so per order)."""
    invocation = on(CLIENT, "systemctl show -p InvocationID --value pebble").stdout.strip()
    out = on(CLIENT, f"journalctl -u pebble --no-pager -o cat _SYSTEMD_INVOCATION_ID={invocation}")
    return len(re.findall(r"Issued certificate serial", out.stdout))


class LoadClient(labkit.RemoteScript):
    """A client sending HTTPS requests through the balancer until stopped; counts failures."""

    def __init__(self, limit=120):
        stop = labkit.stop_file(WORK)
        # requests are flowing 1.5 s before the drill starts
        super().__init__(CLIENT, LOAD_CLIENT, DOMAIN, ROOT, stop, str(limit), stop_file=stop, warmup=1.5)

    def finish(self):
        return super().finish(cooldown=1.5)  # and keep flowing 1.5 s after it


@pytest.fixture(scope="module")
def lb_address(host):
    return host.interface("eth0").addresses[0]


@pytest.fixture(scope="module")
def pebble_root():
    """Pebble's issuing root (new at every Pebble start), fetched over TLS the lab CA vouches for."""
    on(CLIENT, f"mkdir -p {WORK} && curl -sSf --cacert {LAB_CA} -o {ROOT} https://certbot-acme:15000/roots/0")
    on(CLIENT, f"curl -sSf --cacert {LAB_CA} -o {INTERMEDIATE} https://certbot-acme:15000/intermediates/0")
    return ROOT


@pytest.fixture(scope="module")
def testssl_scan(pebble_root, lb_address):
    """testssl.sh against the TLS endpoint, started early in the background (it takes about a minute)."""
    on(CLIENT, f"rm -f {TESTSSL_JSON}")
    return labkit.docker_popen(
        CLIENT,
        [
            "testssl", "--quiet", "--color", "0", "--warnings", "off",
            "--ip", lb_address, "--add-ca", pebble_root, "--jsonfile", TESTSSL_JSON,
            "--protocols", "--std", "--server-preference", "--vulnerable", f"https://{DOMAIN}/",
        ],
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_testssl_runs_in_the_background(host, testssl_scan):
    assert testssl_scan.poll() in (None, 0)


def test_certbot_comes_from_the_distribution_and_renews_by_its_timer(host):
    assert host.package("certbot").is_installed
    timer = host.service("certbot.timer")
    assert timer.is_enabled and timer.is_running
    # No cron job of ours: Debian's /etc/cron.d/certbot is the package's own, a no-op under systemd.
    assert host.run("crontab -l -u root").stdout.strip() == ""
    cron_files = set(host.check_output("grep -l certbot /etc/cron.d/* /etc/cron.*/* 2>/dev/null || true").split())
    assert cron_files <= {"/etc/cron.d/certbot"}, cron_files
    assert host.run("dpkg -S /etc/cron.d/certbot").rc == 0
    # The timer's service trusts the ACME server's CA, like the role's own runs.
    env = host.check_output("systemctl show certbot.service -p Environment --value")
    assert "REQUESTS_CA_BUNDLE=/etc/letsencrypt/ywmessaging-acme-ca.pem" in env
    hook = host.file("/etc/letsencrypt/renewal-hooks/deploy/50-ywmessaging-reload-nginx")
    assert hook.exists and hook.mode == 0o755 and "nginx -t" in hook.content_string


def test_one_certificate_from_one_order_after_converge_and_idempotence(host):
    # converge requested it; the idempotence run (a second converge) requested nothing.
    archive = host.check_output(f"ls /etc/letsencrypt/archive/{DOMAIN}").split()
    assert sorted(archive) == ["cert1.pem", "chain1.pem", "fullchain1.pem", "privkey1.pem"], archive
    assert issued_by_pebble() == 1


def test_certificate_is_issued_by_pebble_for_the_lab_domain(host, pebble_root):
    cert = host.check_output(f"cat {LINEAGE}/cert.pem")
    on(CLIENT, f"cat > {WORK}/served-cert.pem <<'EOF'\n{cert}\nEOF")
    verify = on(CLIENT, f"openssl verify -CAfile {pebble_root} -untrusted {INTERMEDIATE} {WORK}/served-cert.pem")
    assert "OK" in verify.stdout
    text = host.check_output(f"openssl x509 -in {LINEAGE}/cert.pem -noout -text")
    assert re.search(r"Issuer: CN ?= ?Pebble Intermediate CA", text), text
    assert f"DNS:{DOMAIN}" in text
    assert "id-ecPublicKey" in text and "prime256v1" in text  # ECDSA P-256 by default
    renewal = host.file(f"/etc/letsencrypt/renewal/{DOMAIN}.conf").content_string
    assert f"server = {ACME_URL}" in renewal
    assert "authenticator = webroot" in renewal and "webroot_path = /var/www/acme" in renewal
    assert "renew_before_expiry = 30 days" in renewal


def test_pebble_validated_http01_through_nginx_on_the_lb(host):
    log = host.check_output("grep -h /.well-known/acme-challenge/ /var/log/nginx/backend_access.log || true")
    hits = [line for line in log.splitlines() if '" 200 ' in line and '"LetsEncrypt-Pebble-VA' in line]
    assert hits, log


def test_https_health_validates_against_pebbles_root_with_curl(lb_address, pebble_root):
    out = on(CLIENT, f"curl -sS --cacert {pebble_root} --resolve {DOMAIN}:443:{lb_address} https://{DOMAIN}/health")
    assert json.loads(out.stdout)["status"] == "ok"
    # The check is real: without Pebble's root the same request is refused.
    untrusted = on(CLIENT, f"curl -sS --resolve {DOMAIN}:443:{lb_address} https://{DOMAIN}/health", check=False)
    assert untrusted.returncode == 60, untrusted.stderr  # SSL certificate problem


def test_https_health_validates_against_pebbles_root_with_python_requests(host, pebble_root):
    script = (
        "import requests, sys\n"
        f"r = requests.get('https://{DOMAIN}/health', verify='{pebble_root}', timeout=10)\n"
        "print(r.status_code, r.json()['status'])\n"
        "try:\n"
        f"    requests.get('https://{DOMAIN}/health', timeout=10)\n"
        "    print('untrusted-accepted')\n"
        "except requests.exceptions.SSLError:\n"
        "    print('untrusted-refused')\n"
    )
    out = labkit.docker_exec(CLIENT, ["python3", "-c", script]).stdout.split("\n")
    assert out[0] == "200 ok" and out[1] == "untrusted-refused", out


def test_http_redirects_to_https_but_the_acme_path_stays_on_http(host, lb_address):
    head = on(CLIENT, f"curl -sS -I --resolve {DOMAIN}:80:{lb_address} http://{DOMAIN}/health").stdout
    assert head.startswith("HTTP/1.1 301"), head
    assert re.search(rf"(?mi)^location: https://{re.escape(DOMAIN)}/health\r?$", head), head
    token = f"probe-{os.getpid()}"
    probe = f"/var/www/acme/.well-known/acme-challenge/{token}"
    host.run(f"echo {token} > {probe}")
    try:
        out = on(
            CLIENT, f"curl -sS -i --resolve {DOMAIN}:80:{lb_address} http://{DOMAIN}/.well-known/acme-challenge/{token}"
        )
    finally:
        host.run(f"rm -f {probe}")
    assert out.stdout.startswith("HTTP/1.1 200"), out.stdout
    assert out.stdout.rstrip().endswith(token)


def test_check_mode_on_the_converged_host_changes_nothing_and_shows_no_key(host):
    run = playbook("certbot.yml", "--check", "--diff")
    assert run.rc == 0, run.tail(3000)
    assert run.host(LB)["changed"] == 0, run.tail(3000)
    assert "PRIVATE KEY" not in run.output


def test_a_certificate_near_expiry_would_be_renewed(host):
    # Pebble's certificates are valid for 5 years: with a 10-year window this one is "near expiry".
    # Proves the decision reads the certificate's expiry, not just the file's existence.
    not_after = host.check_output(f"openssl x509 -in {LINEAGE}/cert.pem -noout -enddate")
    run = playbook("certbot.yml", "--check", "-e", '{"certbot_renew_before_days": 3650}')
    assert run.rc == 0, run.tail(3000)
    message = " ".join(run.stdout.split())
    assert f"would request a certificate for {DOMAIN}: expires" in message, message[-3000:]
    assert "within 3650 days" in message and f"expires {not_after.split()[-2]}-" in message


def test_renew_dry_run_runs_alone_by_tag_against_pebble(host):
    before = lineage_serial(host)
    run = playbook("certbot.yml", "--tags", "certbot_renew_dry_run")
    assert run.rc == 0, run.tail(3000)
    assert "congratulations, all simulated renewals succeeded" in run.stdout.lower(), run.tail(3000)
    assert run.host(LB)["changed"] == 0
    assert lineage_serial(host) == before  # a dry run leaves the certificate alone


def test_forced_renewal_reloads_nginx_and_serves_the_new_certificate_without_a_failed_request(host, pebble_root):
    before = lineage_serial(host)
    assert served_serial() == before.lstrip("0")
    master = host.check_output("cat /run/nginx.pid")
    env = host.check_output("systemctl show certbot.service -p Environment --value")  # what certbot.timer uses
    client = LoadClient()
    renew = host.run(f"env {env} certbot renew --force-renewal --no-random-sleep-on-renew")
    stats = client.finish()
    assert renew.rc == 0, renew.stderr
    assert "nginx reloaded" in renew.stdout + renew.stderr  # the deploy hook ran: nginx -t, then reload
    after = lineage_serial(host)
    assert after != before
    assert served_serial() == after.lstrip("0")
    assert host.check_output("cat /run/nginx.pid") == master  # reloaded, not restarted
    assert stats["failed"] == 0, stats
    assert stats["ok"] > 20, stats
    assert stats["serials"][0] == before.lstrip("0") and stats["serials"][-1] == after.lstrip("0"), stats
    labkit.record("forced renewal under load: requests ok / failed", f"{stats['ok']} / {stats['failed']}")
    labkit.record("forced renewal under load: serials served", " -> ".join(stats["serials"]))


def test_bad_input_fails_up_front_with_every_problem_named(host):
    renewal = host.file(f"/etc/letsencrypt/renewal/{DOMAIN}.conf").content_string
    extra = {
        "certbot_agree_tos": False,
        "certbot_contact_email": "not-an-address",
        "certbot_certificates": [{"name": "bad name", "domains": ["*.certbot.test"]}],
        # The runbook's `certbot certonly --standalone`, with nginx holding port 80 and no hooks:
        "certbot_method": "standalone",
    }
    run = playbook("certbot.yml", "-e", json.dumps(extra))
    assert run.rc != 0 and run.host(LB)["failed"] == 1, run.tail(3000)
    message = " ".join(run.stdout.split())
    for text in (
        "certbot role: 5 problem(s)",
        "certbot_agree_tos must be true",
        "certbot_contact_email must be one e-mail address",
        "certbot_certificates[].name must be letters",
        "wildcard domains need the DNS-01 challenge",
        "port 80 on certbot-lb is taken (nginx listens there)",
    ):
        assert text in message, message[-3000:]
    assert run.host(LB)["changed"] == 0
    assert host.file(f"/etc/letsencrypt/renewal/{DOMAIN}.conf").content_string == renewal


def test_adding_a_domain_and_switching_the_acme_server_replace_the_certificate(host):
    before = lineage_serial(host)
    extra = {
        "certbot_acme_directory_url": ACME_ALT_URL,
        "certbot_certificates": [{"name": DOMAIN, "domains": [DOMAIN, "www.certbot.test"]}],
    }
    run = playbook("certbot.yml", "-e", json.dumps(extra))
    assert run.rc == 0, run.tail(3000)
    assert run.host(LB)["changed"] >= 1
    text = host.check_output(f"openssl x509 -in {LINEAGE}/cert.pem -noout -ext subjectAltName")
    assert f"DNS:{DOMAIN}" in text and "DNS:www.certbot.test" in text
    assert f"server = {ACME_ALT_URL}" in host.file(f"/etc/letsencrypt/renewal/{DOMAIN}.conf").content_string
    # Same lineage, expanded and replaced in place: nginx_lb's paths stay valid.
    assert host.check_output("ls /etc/letsencrypt/live").split() == ["README", DOMAIN]
    after = lineage_serial(host)
    assert after != before
    assert served_serial() == after.lstrip("0")  # the handler reloaded nginx


def test_tls_endpoint_passes_testssl(host, testssl_scan):
    output = testssl_scan.communicate(timeout=400)[0]
    assert testssl_scan.returncode == 0, output[-3000:]
    findings = json.loads(on(CLIENT, f"cat {TESTSSL_JSON}").stdout)
    client_side = {"engine_problem", "scanTime", "service"}  # about the scanning host, not the server
    ranked = [f for f in findings if f["id"] not in client_side]
    for f in ranked:
        labkit.note(TESTSSL_SUMMARY, f"{f['severity']:8} {f['id']:28} {f['finding']}")
    assert {f["id"] for f in ranked} >= {"SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "cipherlist_STRONG"}
    worse = [f for f in ranked if f["severity"] not in ("OK", "INFO")]
    assert worse == [], worse


def test_acme_outage_fails_clearly_and_the_existing_certificate_keeps_serving(host):
    before = lineage_serial(host)
    fingerprint = host.check_output(f"sha256sum {LINEAGE}/fullchain.pem")
    on(CLIENT, "systemctl stop pebble")
    try:
        client = LoadClient()
        # As before a host's first request, certbot has no log yet: the failure is still explained.
        host.run("rm -rf /var/log/letsencrypt")
        # The scenario's own settings (Pebble's first URL, one domain) differ from the certificate
        # now on disk, so the role must ask the ACME server, which is down.
        run = playbook("certbot.yml")
        stats = client.finish()
    finally:
        on(CLIENT, "systemctl start pebble")
        # A restarted Pebble has forgotten every account: let certbot register anew next time.
        host.run("rm -rf /etc/letsencrypt/accounts/certbot-acme:14000 /etc/letsencrypt/accounts/certbot-acme-alt:14000")
    message = " ".join(run.stdout.split())
    assert run.rc != 0 and run.host(LB)["failed"] == 1, run.tail(3000)
    assert f"certbot could not obtain certificate '{DOMAIN}'" in message, message[-3000:]
    assert "Connection refused" in message
    assert "stays in place and nginx keeps serving it" in message
    assert host.check_output(f"sha256sum {LINEAGE}/fullchain.pem") == fingerprint
    assert served_serial() == before.lstrip("0")
    assert host.service("nginx").is_running
    assert stats["failed"] == 0 and stats["ok"] > 20, stats
