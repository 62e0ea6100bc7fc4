"""The example inventories (inventories/production, inventories/staging) rendered for real hosts: every
role's configuration for each of their hosts, rendered on the lab host that stands in for it (same
group; its facts, the example's values and throw-away vault values) by tests/lab/render-example.yml
into a scratch directory, then read by the tools that read it on a server - PgBouncer through the
role's own checker, `nginx -t`, `logrotate --debug`, `systemd-analyze verify`, `sh -n` - and held to
the example's topology: the balancer's upstream names every backend of the example, and each
backend's DATABASE_URL reaches the example's PgBouncer at the port it listens on. Nothing live is
touched (the stack's managed files and PIDs are the same afterwards)."""

import json
import os
import re
import shlex
import sys

import labkit
import pytest
import yaml
from stacklab import GROUPS, HOSTVARS, PROJECT, managed_state, on, record

sys.path.insert(0, os.path.join(PROJECT, "tests", "integration"))  # the examples' throw-away vault values
from examples import EXAMPLES, vault_values  # noqa: E402

SCRATCH = "/tmp/ywlab-render-example"  # noqa: S108 - on the lab hosts standing in, made afresh and removed
RENDERED = ("pgbouncer", "backend", "lb")  # the groups whose roles render files (render-example.yml)
with open(os.path.join(PROJECT, "roles", "nginx_lb", "vars", "main.yml"), encoding="utf-8") as _fh:
    _NGINX_LB_VARS = yaml.safe_load(_fh)
with open(os.path.join(PROJECT, "roles", "pgbouncer", "vars", "main.yml"), encoding="utf-8") as _fh:
    _PGBOUNCER_VARS = yaml.safe_load(_fh)


def example_hosts(example):
    """{group: {host: hostvars}} of the example's hosts.yml."""
    groups, hostvars = labkit.inventory_hosts(os.path.join(PROJECT, "inventories", example))
    return {group: {host: hostvars.get(host, {}) for host in hosts} for group, hosts in groups.items()}


def stand_ins(example):
    """Each example host of a rendered group -> the lab host of the same group standing in for it."""
    hosts = example_hosts(example)
    return {
        host: GROUPS[group][i % len(GROUPS[group])]
        for group in RENDERED
        for i, host in enumerate(sorted(hosts.get(group, {})))
    }


def overlay(example, tmp_path):
    """A second inventory source: the lab's connection to each stand-in. The example's ansible_host
    stays (the examples read it, e.g. the backends' database host); ansible_docker_host names the
    container and wins over it for the connection."""
    hosts = {
        host: {
            "ansible_connection": "community.docker.docker",
            "ansible_docker_host": HOSTVARS[lab]["ansible_host"],
            "ansible_user": "root",
            "ansible_become": False,
        }
        for host, lab in stand_ins(example).items()
    }
    path = tmp_path / "overlay.yml"
    path.write_text(json.dumps({"all": {"hosts": hosts}}))
    return path


def rendered(lab, role, name):
    return on(lab, f"cat {SCRATCH}/{role}/{name}").stdout


@pytest.fixture(scope="module", params=EXAMPLES)
def example(request, tmp_path_factory):
    name = request.param
    tmp_path = tmp_path_factory.mktemp(f"example-{name}")
    vault = tmp_path / "vault.json"
    vault.write_text(json.dumps(vault_values(name)))
    before = managed_state()
    run = labkit.play(
        os.path.join(PROJECT, "tests", "lab", "render-example.yml"),
        "-e", f"@{vault}", "-e", f"render_dir={SCRATCH}", "-e", f"render_roles_dir={os.path.join(PROJECT, 'roles')}",
        inventory=[os.path.join(PROJECT, "inventories", name), overlay(name, tmp_path)],
        cwd=PROJECT,
    )  # fmt: skip
    record(f"example {name}: every role's configuration rendered on the lab's stand-ins (s)", f"{run.seconds:.1f}")
    assert run.rc == 0, run.tail()
    assert "throwaway-vault_" not in run.output, "a vault value reached the output"
    yield name
    for lab in sorted(set(stand_ins(name).values())):
        on(lab, f"rm -rf {SCRATCH}", check=False)
    assert managed_state() == before, "rendering the example changed a live file or service"


def test_pgbouncer_ini_passes_the_roles_checker_and_logrotate(example):
    for host, lab in stand_ins(example).items():
        if lab not in GROUPS["pgbouncer"]:
            continue
        ini = f"{SCRATCH}/pgbouncer/pgbouncer.ini"
        checker = _PGBOUNCER_VARS["__pgbouncer_checker"]
        checked = on(lab, f"{checker} --user {_PGBOUNCER_VARS['__pgbouncer_user']} {ini}", check=False)
        assert checked.returncode == 0, f"{example} {host}: {checked.stdout}{checked.stderr}"
        rotated = on(lab, f"logrotate --debug {SCRATCH}/pgbouncer/logrotate", check=False)
        assert rotated.returncode == 0 and "error" not in rotated.stderr.lower(), f"{example} {host}: {rotated.stderr}"


def test_nginx_accepts_the_balancer_config_and_it_names_every_backend_of_the_example(example):
    backends = example_hosts(example)["backend"]
    for host, lab in stand_ins(example).items():
        if lab not in GROUPS["lb"]:
            continue
        upstream = rendered(lab, "nginx_lb", "upstream.conf")
        for backend, hv in backends.items():
            assert re.search(rf"server {re.escape(hv['ansible_host'])}:\d+ ", upstream), f"{example}: {backend}"
        # The files in nginx's layout (nginx.conf beside its include directory, as the role stages
        # them), and a throw-away certificate wherever the example names one the stand-in lacks.
        tree = f"{SCRATCH}/nginx"
        script = [f"mkdir -p {tree}/{_NGINX_LB_VARS['__nginx_lb_include_dir']}"]
        for file in _NGINX_LB_VARS["__nginx_lb_files"]:
            script.append(f"cp {SCRATCH}/nginx_lb/{file['template'].removesuffix('.j2')} {tree}/{file['path']}")
        conf = rendered(lab, "nginx_lb", "servers.conf") + rendered(lab, "nginx_lb", "tls.conf")
        certs = sorted(set(re.findall(r"^\s*ssl_\w*certificate\w*\s+(\S+?);", conf, re.M)))
        assert len(certs) >= 2, f"{example}: the balancer's files name no certificate and key"
        made = [path for path in certs if on(lab, f"test -e {shlex.quote(path)}", check=False).returncode != 0]
        script.append(
            f"openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=render "
            f"-keyout {SCRATCH}/key.pem -out {SCRATCH}/cert.pem 2>/dev/null"
        )
        for path in made:
            source = "key.pem" if "key" in os.path.basename(path) else "cert.pem"
            script.append(f"install -D -m 0600 {SCRATCH}/{source} {shlex.quote(path)}")
        try:
            on(lab, " && ".join(script))
            tested = on(lab, f"nginx -t -c {tree}/nginx.conf", check=False)
            assert tested.returncode == 0, f"{example} {host}: {tested.stderr}"
        finally:
            for path in made:
                on(lab, f"rm -f {shlex.quote(path)}; rmdir -p {shlex.quote(os.path.dirname(path))}", check=False)


def test_each_backend_unit_verifies_and_reaches_the_examples_pgbouncer(example):
    hosts = example_hosts(example)
    pgbouncer_host = sorted(hosts["pgbouncer"])[0]
    pgbouncer_lab = stand_ins(example)[pgbouncer_host]
    port = re.search(r"^listen_port = (\d+)$", rendered(pgbouncer_lab, "pgbouncer", "pgbouncer.ini"), re.M).group(1)
    for host, lab in stand_ins(example).items():
        if lab not in GROUPS["backend"]:
            continue
        on(lab, f"cp {SCRATCH}/backend_node/backend.service {SCRATCH}/backend_node/ywm-render.service")
        verified = on(lab, f"systemd-analyze verify {SCRATCH}/backend_node/ywm-render.service", check=False)
        # systemd ignores a setting it cannot parse with only a warning: any word from it fails the test
        assert verified.returncode == 0 and not verified.stderr.strip(), f"{example} {host}: {verified.stderr}"
        env = rendered(lab, "backend_node", "environment")
        url = re.search(r'^DATABASE_URL="postgres(?:ql)?://[^@]+@([^:/]+):(\d+)/', env, re.M)
        assert url, f"{example} {host}: no DATABASE_URL"
        assert url.groups() == (hosts["pgbouncer"][pgbouncer_host]["ansible_host"], port), f"{example} {host}"


def test_the_certbot_deploy_hook_parses_as_the_shell_runs_it(example):
    for host, lab in stand_ins(example).items():
        if lab in GROUPS["lb"]:
            parsed = on(lab, f"sh -n {SCRATCH}/certbot/reload-nginx.sh", check=False)
            assert parsed.returncode == 0, f"{example} {host}: {parsed.stderr}"
