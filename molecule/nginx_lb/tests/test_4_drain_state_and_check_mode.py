"""Drain/undrain from a play on the load balancers, a drained backend staying out through a full
run of the role, and `--check --diff` on the converged hosts reporting no change."""

import labkit
from nginx_lb_lab import BACKENDS, CA, LB, LBS, address_of, run_playbook, upstream_health

testinfra_hosts = [LB]


def test_draining_an_unknown_backend_fails_and_names_the_known_ones(host):
    run = run_playbook("lb-drain.yml", "-e", "lab_backend=backend-99")
    assert run.rc != 0
    assert "nginx_lb_drain_backend=backend-99 is not in the upstream (servers: " + ", ".join(BACKENDS) in run.stdout


def test_a_drained_backend_gets_no_traffic_and_stays_out_through_a_check_diff_run(host):
    drained = "nginx_lb-backend-3"
    run = run_playbook("lb-drain.yml", "-e", f"lab_backend={drained}")
    assert run.rc == 0, run.stdout[-3000:]
    try:
        for lb in LBS:
            assert f"fail_timeout=10s down;  # nginx_lb backend={drained}" in labkit.docker_exec(lb, "nginx -T").stdout
        result = upstream_health(
            host,
            distribution=dict(
                url="https://127.0.0.1/health",
                ca_path=CA,
                count=60,
                concurrency=4,
                expected=[address_of(b) for b in BACKENDS if b != drained],
                excluded=[address_of(drained)],
            ),
        )
        assert address_of(drained) not in result["distribution"]["counts"]

        # The converged hosts, one backend drained: a full run of the role in check mode changes
        # nothing (it renders the drained backend `down` too) and shows no diff.
        check = run_playbook("converge.yml", "--check", "--diff")
        assert check.rc == 0, check.stdout[-4000:]
        counts = check.recap
        assert set(counts) >= set(LBS), counts
        assert all(c["changed"] == 0 and c["failed"] == 0 for c in counts.values()), counts
        assert "PRIVATE KEY" not in check.stdout
    finally:
        undrain = run_playbook("lb-drain.yml", "-e", f"lab_backend={drained}", "-e", "lab_action=undrain")
    assert undrain.rc == 0, undrain.stdout[-3000:]
    for lb in LBS:
        assert " down;" not in labkit.docker_exec(lb, "cat /etc/nginx/ywmessaging/upstream.conf").stdout
        assert labkit.docker_exec(lb, "cat /etc/nginx/ywmessaging/drained.list").stdout.strip() == ""
