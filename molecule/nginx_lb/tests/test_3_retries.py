"""Bounded retries that never repeat a non-idempotent request: the backends count how many times
each request (by its X-Test-Id) reached them, so "sent once" is measured, not assumed."""

import uuid

from nginx_lb_lab import BACKENDS, CA, LB, SERVER_NAME, TRIES, sh

testinfra_hosts = [LB]


def send(method, path):
    test_id = uuid.uuid4().hex
    status = sh(
        LB,
        f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 30 --cacert {CA} -X {method} "
        f"-H 'X-Test-Id: {test_id}' --resolve {SERVER_NAME}:443:127.0.0.1 'https://{SERVER_NAME}{path}'",
    ).stdout
    return int(status), test_id


def times_received(test_id):
    total = 0
    for backend, port in BACKENDS.items():
        out = sh(LB, f"curl -s --max-time 5 'http://{backend}:{port}/_calls?id={test_id}'").stdout
        total += int(out.split('"count": ')[1].split(",")[0])
    return total


def test_a_get_answered_503_is_passed_to_the_next_backend_up_to_the_bound(host):
    status, test_id = send("GET", "/api/messages?status=503")
    assert status == 503  # every backend answered 503; the last answer is passed on
    assert times_received(test_id) == TRIES


def test_a_post_answered_503_is_not_sent_to_a_second_backend(host):
    status, test_id = send("POST", "/api/messages?status=503")
    assert status == 503
    assert times_received(test_id) == 1


def test_a_post_that_times_out_is_answered_504_and_not_sent_again(host):
    # nginx_lb_proxy_read_timeout is 3 s in this scenario; the backend takes 4.5 s.
    status, test_id = send("POST", "/api/messages?sleep_ms=4500")
    assert status == 504
    assert times_received(test_id) == 1
