"""The one place that reads wandb's errors: which failures are retried, which are final."""

from __future__ import annotations

import pytest
from wandb.errors import AuthenticationError, CommError

from wandb2numpy.errors import AuthError
from wandb2numpy.wandb.client import classify, describe, http_status, network_problem

GIVING_UP = "POST http://127.0.0.1:1/graphql giving up after 2 attempt(s)\nwhile retrying: HTTP {}: boom"


@pytest.mark.parametrize(
    "exc,verdict",
    [
        (CommError(GIVING_UP.format(429)), "rate_limit"),
        (CommError(GIVING_UP.format(500)), "transient"),
        (CommError(GIVING_UP.format(503)), "transient"),
        (CommError(GIVING_UP.format(501)), "fatal"),
        (CommError("HTTP 400: bad query"), "fatal"),
        (CommError("HTTP 404: not found"), "fatal"),
        (CommError("HTTP 401: unauthorized"), "auth"),
        (Exception("request did not respond in time."), "transient"),
        (ConnectionResetError("reset by peer"), "transient"),
        (AuthenticationError("Failed to verify credentials with http://x: invalid API key"), "auth"),
        # The start-up query failing on a flaky server is not a refused key.
        (AuthenticationError("Failed to verify credentials with http://x: " + GIVING_UP.format(502)), "transient"),
        (AuthError("refused"), "auth"),
        # ... nor a wandb-core too busy to answer, nor an address that is not the W&B API.
        (
            AuthenticationError(
                "Failed to verify credentials with http://x: Failed to execute API request: "
                "the service process is busy and did not respond in time."
            ),
            "transient",
        ),
        (
            AuthenticationError('Failed to verify credentials with http://x/y: returned error 404: {"data":null}'),
            "fatal",
        ),
        (ValueError("Could not find project acme/nope"), "fatal"),
    ],
)
def test_classify(exc: BaseException, verdict: str) -> None:
    assert classify(exc) == verdict


def test_status_found_through_the_cause_chain() -> None:
    inner = Exception(GIVING_UP.format(503))
    outer = CommError("wrapped")
    outer.__cause__ = inner
    assert http_status(outer) == 503
    assert classify(outer) == "transient"


def test_describe_scrubs_the_key() -> None:
    key = "local-" + "k" * 40
    assert key not in describe(Exception(f"bad key {key}"), key)


REFUSED = (
    'POST http://127.0.0.1:9/graphql giving up after 2 attempt(s): Post "http://127.0.0.1:9/graphql": '
    "dial tcp 127.0.0.1:9: connect: connection refused"
)
NO_HOST = (
    'POST http://x.invalid/graphql giving up after 2 attempt(s): Post "http://x.invalid/graphql": '
    "dial tcp: lookup x.invalid on 10.0.0.53:53: no such host"
)


@pytest.mark.parametrize(
    "exc,problem",
    [
        (CommError(REFUSED), "refused"),
        (CommError(NO_HOST), "no_host"),
        (ConnectionRefusedError(111, "Connection refused"), "refused"),
        (CommError(GIVING_UP.format(503)), None),  # the server answered
        (Exception("request did not respond in time."), None),
    ],
)
def test_network_problem(exc: BaseException, problem: str | None) -> None:
    assert network_problem(exc) == problem


def test_describe_says_a_network_problem_once() -> None:
    text = describe(CommError(REFUSED + "\nwhile retrying: " + REFUSED))
    assert text == "CommError: connection refused (nothing listening at that address)"
