"""`nimbus-api wait`: the units' wait for the database and the broker, bounded and logged without secrets."""

from __future__ import annotations

import pytest

from nimbus_api import cli, readiness


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def flaky(failures, error=ConnectionRefusedError("[Errno 111] Connection refused")):
    calls = []

    def probe():
        calls.append(1)
        if len(calls) <= failures:
            raise error
    probe.calls = calls
    return probe


def test_waits_until_the_peer_answers_and_says_so_once_then_every_ten_seconds():
    clock, said = Clock(), []
    probe = flaky(25)
    assert readiness.wait_for([("the database", probe)], 60, said.append, clock=clock, sleep=clock.sleep)
    assert len(probe.calls) == 26
    waiting = [line for line in said if line.startswith("waiting for the database (ConnectionRefusedError")]
    assert len(waiting) == 3 and said[-1] == "the database answers"


def test_a_peer_that_is_there_costs_one_probe_and_no_line():
    clock, said = Clock(), []
    probe = flaky(0)
    assert readiness.wait_for([("the database", probe), ("the broker", flaky(0))], 60, said.append,
                              clock=clock, sleep=clock.sleep)
    assert (len(probe.calls), said, clock.now) == (1, [], 0.0)


def test_gives_up_after_the_timeout_and_names_the_peer():
    clock, said = Clock(), []
    assert not readiness.wait_for([("the database", flaky(10)), ("the broker", flaky(10 ** 6))], 30, said.append,
                                  clock=clock, sleep=clock.sleep)
    assert said[-1].startswith("gave up waiting for the broker after 30 s: ConnectionRefusedError")
    assert 30 <= clock.now < 31


def test_a_secret_the_driver_echoes_is_not_logged():
    clock, said = Clock(), []
    probe = flaky(1, error=RuntimeError("login refused for nimbus:s3cret-pw@db"))
    readiness.wait_for([("the database", probe)], 5, said.append, secrets=["s3cret-pw"], clock=clock,
                       sleep=clock.sleep)
    assert said and not [line for line in said if "s3cret-pw" in line]
    assert "nimbus:***@db" in said[0]


def test_the_names_hide_the_passwords():
    name = readiness.database_probe("mysql+pymysql://nimbus:s3cret-pw@db:3306/nimbus")[0]
    assert "s3cret-pw" not in name and "db:3306" in name
    name = readiness.broker_probe("amqp://nimbus:s3cret-pw@mq:5672/%2Fnimbus")[0]
    assert "s3cret-pw" not in name and "mq:5672" in name


def test_the_command_waits_for_a_real_database(settings, monkeypatch, capsys):
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    assert cli.server_main(["wait", "--timeout", "5"]) == 0
    assert '"ready": ["the database at sqlite' in capsys.readouterr().out


def test_the_command_fails_when_the_broker_does_not_come(settings, monkeypatch, capsys):
    unreachable = settings.model_copy(update={"broker_url": "amqp://nimbus:s3cret-pw@127.0.0.1:1//"})
    monkeypatch.setattr(cli, "get_settings", lambda: unreachable)
    monkeypatch.setattr(readiness, "RETRY", 0.1)
    with pytest.raises(SystemExit) as stopped:
        cli.server_main(["wait", "--broker", "--timeout", "0.5"])
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert "gave up waiting for the broker at amqp://nimbus:**@127.0.0.1:1//" in err
    assert "s3cret-pw" not in err
