"""nginx_lb's upstream, rendered by the role's own validation and template for an inventory whose
backends set their ports in different ways: nginx must be pointed at the port each backend listens on
(backend_node_port) unless the balancer is told otherwise (nginx_lb_backend_port on the host)."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

INVENTORY = """
all:
  children:
    api_servers:
      hosts:
        app-a: {ansible_host: 10.1.0.11, backend_node_port: 4000}
        app-b:
          {ansible_host: 10.1.0.12, backend_node_port: 4000, nginx_lb_backend_port: 4100, nginx_lb_backend_weight: 3}
        app-c: {ansible_host: app-c.internal}
        app-d: {ansible_host: 10.1.0.14, nginx_lb_backend_address: "fd00::14", nginx_lb_backend_backup: true}
    balancers:
      hosts:
        edge-1:
          nginx_lb_server_name: api.example.org
          nginx_lb_upstream_group: api_servers
          nginx_lb_backend_port: 8080
"""

PLAYBOOK = """
- hosts: balancers
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: ywmessaging.scaling.nginx_lb
        tasks_from: validate
        public: true
    - ansible.builtin.template:
        src: "%(root)s/roles/nginx_lb/templates/upstream.conf.j2"
        dest: "%(out)s"
        mode: "0644"
      vars:
        __nginx_lb_drained: []
      delegate_to: localhost
"""


def test_each_backend_is_reached_on_the_port_it_listens_on(tmp_path):
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    out = tmp_path / "upstream.conf"
    (tmp_path / "play.yml").write_text(PLAYBOOK % {"root": ROOT, "out": out})
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(tmp_path / "play.yml"),
            "-i", str(tmp_path / "hosts.yml"), "-e", "ansible_connection=local",
            "-e", f"ansible_python_interpreter={sys.executable}"]  # fmt: skip
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    servers = re.findall(r"^\s*server (\S+) weight=(\d+)[^;]*?( backup)?;.*backend=(\S+)$", out.read_text(), re.M)
    assert servers == [
        ("10.1.0.11:4000", "1", "", "app-a"),  # its backend_node_port, not the balancer's default
        ("10.1.0.12:4100", "3", "", "app-b"),  # the balancer's port for it wins
        ("app-c.internal:8080", "1", "", "app-c"),  # neither: the balancer's nginx_lb_backend_port
        ("[fd00::14]:8080", "1", " backup", "app-d"),
    ], out.read_text()
