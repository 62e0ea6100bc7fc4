"""The example inventories (inventories/production, inventories/staging) are what operators copy:
every input of site.yml and of rollback.yml (all four parts) must pass the playbooks' own validation
stage with them, given only the vault values they document. The hosts are names from the examples;
the run stays on the controller (ansible_connection=local), so nothing is contacted."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from examples import EXAMPLES, vault_values

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def app_db_name(example):
    with open(os.path.join(ROOT, "inventories", example, "group_vars", "all", "main.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["app_db_name"]


def validate(example, tmp_path, *extra, inventory=None):
    values = tmp_path / "vault.json"
    values.write_text(json.dumps(vault_values(example)))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    argv = [
        os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
        os.path.join(ROOT, "playbooks", "validate.yml"),
        "-i", str(inventory or os.path.join(ROOT, "inventories", example)),
        "-e", f"@{values}", "-e", "ansible_connection=local", "-e", f"ansible_python_interpreter={sys.executable}",
        *extra,
    ]  # fmt: skip
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    proc.output = proc.stdout + proc.stderr
    return proc


@pytest.mark.parametrize("example", EXAMPLES)
def test_site_inputs_of_the_example_pass_validation(example, tmp_path):
    proc = validate(example, tmp_path)
    assert proc.returncode == 0, proc.output[-3000:]
    assert "input problem(s)" not in proc.output


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_rollback_part_of_the_example_passes_validation(example, tmp_path):
    every_part = ["-e", "validate_playbook=rollback", "-e", "rollback_parts=code,pgbouncer,dns,database"]
    proc = validate(example, tmp_path, *every_part, "-e", f"rollback_database_confirm={app_db_name(example)}")
    assert proc.returncode == 0, proc.output[-3000:]
    # and the same run refuses what the example would lack without its DNS rollback target
    proc = validate(example, tmp_path, *every_part, "-e", f"rollback_database_confirm={app_db_name(example)}",
                    "-e", "rollback_dns_target=")  # fmt: skip
    assert proc.returncode != 0
    assert "input problem(s)" in proc.output and "rollback_dns_target" in proc.output, proc.output[-3000:]


def test_the_examples_differ_where_staging_must_not_touch_production():
    def load(example):
        with open(os.path.join(ROOT, "inventories", example, "group_vars", "all", "main.yml"), encoding="utf-8") as fh:
            return yaml.safe_load(fh)

    prod, staging = load("production"), load("staging")
    for name in ("api_domain", "app_db_name", "postgresql_primary", "redis_primary", "rollback_dns_target"):
        assert prod[name] != staging[name], name
    for example in (prod, staging):  # the record site.yml moves and rollback.yml moves back is the API's name
        assert f"{example['dns_record_name']}.{example['dns_record_zone']}" == example["api_domain"]
        assert example["site_dns_cutover"] is True and example["site_dns_ipv4"]
    assert prod["site_dns_ipv4"] != staging["site_dns_ipv4"]
    assert staging.get("pgbouncer_default_pool_size", 30) < prod.get("pgbouncer_default_pool_size", 30)


def test_bad_values_on_every_tier_are_named_in_one_message(tmp_path):
    """One bad value per role and per playbook: the one message names every one of them, whichever
    host finds its problem first (a host's rescued problem must not hide the other hosts')."""
    extra = {
        "api_domain": "not a name",
        "pgbouncer_listen_port": 70000,
        "pg_backup_keep": 0,
        "backend_node_service_name": "a b",
        "nginx_lb_server_name": "a;b",
        "certbot_contact_email": "nobody",
        "verify_distribution_tolerance": 1,
        "site_dns_ipv4": ["203.0.113.999"],
    }
    proc = validate("production", tmp_path, "-e", json.dumps(extra))
    assert proc.returncode != 0
    message = proc.output[proc.output.index("input problem(s), found before any host was changed") :]
    assert not [name for name in extra if name not in message], message


def test_a_host_pattern_set_in_the_inventory_is_refused_by_name_and_taken_as_an_extra_var(tmp_path):
    # A play's hosts: reads extra vars only; set in group_vars, site_backup_hosts would be ignored by the
    # backup play (which would back up from pgbouncer[0]) while the tasks honour it.
    inventory = tmp_path / "inventory"
    shutil.copytree(os.path.join(ROOT, "inventories", "production"), inventory)
    with open(inventory / "group_vars" / "all" / "main.yml", "a", encoding="utf-8") as fh:
        # verify_hosts and site_lb_group as the plays' defaults: nothing is lost, nothing to say
        fh.write('\nsite_backup_hosts: "backend[0]"\nverify_hosts: "pgbouncer:backend:lb"\nsite_lb_group: lb\n')
        fh.write('drill_loadgen_hosts: "lb[0]"\n')
    proc = validate("production", tmp_path, inventory=inventory)
    assert proc.returncode != 0 and "1 input problem(s)" in proc.output, proc.output[-3000:]
    problem = proc.output.split("1 input problem(s)")[1].split("\n")[1]
    assert "site_backup_hosts set in the inventory (site_backup_hosts=backend[0])" in problem, problem
    assert "default (site_backup_hosts=pgbouncer[0])" in problem and "with -e" in problem, problem
    assert "verify_hosts" not in problem and "drill_loadgen_hosts" not in problem, problem
    # the same value given as an extra var is what the backup play reads: accepted
    proc = validate("production", tmp_path, "-e", "site_backup_hosts=backend[0]", inventory=inventory)
    assert proc.returncode == 0, proc.output[-3000:]
    # the drills' load generator pattern, refused for failover.yml; site_lb_group as set is the default
    drill = ["-e", "validate_playbook=failover", "-e", "failover_backend=backend-2"]
    proc = validate("production", tmp_path, *drill, inventory=inventory)
    assert proc.returncode != 0, proc.output[-3000:]
    problem = proc.output.split("1 input problem(s)")[1].split("\n")[1]
    assert "drill_loadgen_hosts set in the inventory (drill_loadgen_hosts=lb[0])" in problem, problem
    assert "site_lb_group" not in problem and "site_backup_hosts" not in problem, problem
    proc = validate("production", tmp_path, *drill, "-e", "drill_loadgen_hosts=lb[0]", inventory=inventory)
    assert proc.returncode == 0, proc.output[-3000:]
