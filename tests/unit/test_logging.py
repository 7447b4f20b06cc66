"""The per-request logger (`api.logging.bound_logger`): built once, rebuilt when logging is
configured again, and filtered like every other line."""

from __future__ import annotations

import io
import json

from api.logging import bound_logger, configure_logging


def test_the_bound_logger_follows_each_configuration() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", stream=first)
    log = bound_logger("referral.api")
    assert bound_logger("referral.api") is log, "built once per configuration"
    log.info("request", route="/cases", status=201, given_name="Zyxwvut-Canary")
    configure_logging("info", stream=second)
    bound_logger("referral.api").info("request", route="/inbox", status=200)
    assert bound_logger("referral.api") is not log
    [line] = first.getvalue().splitlines()
    record = json.loads(line)
    assert (record["route"], record["status"], record["level"]) == ("/cases", 201, "info")
    assert "Zyxwvut-Canary" not in line, "keys outside the allow-list never reach a line"
    assert [json.loads(x)["route"] for x in second.getvalue().splitlines()] == ["/inbox"]


def test_the_bound_logger_keeps_the_configured_level() -> None:
    stream = io.StringIO()
    configure_logging("warning", stream=stream)
    bound_logger("referral.api").info("request", route="/cases")
    bound_logger("referral.api").warning("store unavailable", error_type="OperationalError")
    assert [json.loads(x)["event"] for x in stream.getvalue().splitlines()] == [
        "store unavailable"
    ]
