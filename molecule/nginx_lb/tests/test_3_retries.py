"""Retries that never repeat a non-idempotent request nor an application's answer: the backends count how many times
each request (by its X-Test-Id) reached them, so "sent once" is measured, not assumed."""

import uuid

import labkit
from nginx_lb_lab import BACKENDS, CA, LB, SERVER_NAME

testinfra_hosts = [LB]


def send(method, path):
    test_id = uuid.uuid4().hex
    status = labkit.docker_exec(
        LB,
        f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 30 --cacert {CA} -X {method} "
        f"-H 'X-Test-Id: {test_id}' --resolve {SERVER_NAME}:443:127.0.0.1 'https://{SERVER_NAME}{path}'",
    ).stdout
    return int(status), test_id


def times_received(test_id):
    total = 0
    for backend, port in BACKENDS.items():
        out = labkit.docker_exec(LB, f"curl -s --max-time 5 'http://{backend}:{port}/_calls?id={test_id}'").stdout
        total += int(out.split('"count": ')[1].split(",")[0])
    return total


def test_an_api_get_answered_503_is_the_application_s_answer_not_retried_and_not_a_failed_backend(host):
    # A 503 from the API is what every backend answers while Redis or PostgreSQL is down: it goes to
    # the client as it is, once, and does not count against max_fails (test_5 proves the counting).
    status, test_id = send("GET", "/api/messages?status=503")
    assert status == 503
    assert times_received(test_id) == 1


def test_a_post_answered_503_is_not_sent_to_a_second_backend(host):
    status, test_id = send("POST", "/api/messages?status=503")
    assert status == 503
    assert times_received(test_id) == 1


def test_a_post_that_times_out_is_answered_504_and_not_sent_again(host):
    # nginx_lb_proxy_read_timeout is 3 s in this scenario; the backend takes 4.5 s.
    status, test_id = send("POST", "/api/messages?sleep_ms=4500")
    assert status == 504
    assert times_received(test_id) == 1
