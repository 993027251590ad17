"""`make dev` keeps its data: a conversation, its messages and an opt-out survive a restart of `parley
local` on the same state directory; `--fresh` starts clean. Plus the state file's own rules
(local/persist.py): atomic writes, an unreadable file moved aside, a template changed since the save."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from local.persist import FORMAT, Persistence, Snapshotter, StateDir, StateError
from local.process import ROOT, StackProcess, free_port, stack_process, wait_until

OUR_NUMBER = "+15005550006"
CUSTOMER = "+14155550471"
QUITTER = "+14155550472"
REGION = "us-east-1"


def api(stack: StackProcess, token: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(
        method, stack.base_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=15, **kwargs
    )


def texted(stack: StackProcess, sender: str, body: str) -> None:
    response = requests.post(
        f"{stack.base_url}/_sim/twilio/_inbound",
        json={"from": sender, "to": OUR_NUMBER, "body": body},
        timeout=15,
    )
    assert response.status_code == 200, response.text


def conversation(stack: StackProcess, token: str, number: str) -> dict[str, Any] | None:
    response = api(stack, token, "GET", "/v1/conversations", params={"limit": 200})
    assert response.status_code == 200, response.text
    return next((c for c in response.json()["conversations"] if c["customer_number"] == number), None)


def bodies(stack: StackProcess, token: str, number: str) -> list[str]:
    response = api(stack, token, "GET", f"/v1/conversations/{number}/messages")
    assert response.status_code == 200, response.text
    return sorted(m["body"] for m in response.json()["messages"])


def send(stack: StackProcess, token: str, number: str, body: str) -> dict[str, Any]:
    response = api(stack, token, "POST", "/v1/messages", json={"to": [number], "body": body})
    assert response.status_code == 202, response.text
    message_id = response.json()["messages"][0]["message_id"]
    found = api(stack, token, "GET", f"/v1/messages/{message_id}")
    assert found.status_code == 200, found.text
    result: dict[str, Any] = found.json()
    return result


def saved_with(state: Path, number: str) -> bool:
    """The saved file holds the number's conversation and its message (not only the lead routing made)."""
    try:
        tables = json.loads((state / "state.json").read_text())["tables"]
    except FileNotFoundError:
        return False
    return all(
        any(item.get("customer_number", {}).get("S") == number for item in tables[name]["items"])
        for name in ("ConversationsTable", "MessagesTable")
    )


def stack_at(tmp_path: Path, state: Path, name: str, *extra: str) -> Any:
    return stack_process(tmp_path / f"{name}.log", state_dir=state, extra_args=extra)


def test_a_restart_keeps_conversations_messages_and_opt_outs_and_fresh_starts_clean(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with stack_at(tmp_path, state, "first") as first:
        token = first.token()
        texted(first, CUSTOMER, "Is the shop open on Sunday?")
        wait_until(lambda: conversation(first, token, CUSTOMER))
        reply = send(first, token, CUSTOMER, "Yes, 10 to 4")
        wait_until(
            lambda: (
                api(first, token, "GET", f"/v1/messages/{reply['message_id']}").json()["status"]
                == "delivered"
            )
        )
        texted(first, QUITTER, "STOP")
        wait_until(lambda: send(first, token, QUITTER, "probe")["status"] == "suppressed")
        before = bodies(first, token, CUSTOMER)
    assert "local state saved" in (tmp_path / "first.log").read_text()  # on SIGTERM, before moto stopped
    assert json.loads((state / "state.json").read_text())["format"] == FORMAT

    with stack_at(tmp_path, state, "second") as second:
        token = second.token()
        kept = conversation(second, token, CUSTOMER)
        assert kept is not None and kept["message_count"] == 2
        assert bodies(second, token, CUSTOMER) == before == ["Is the shop open on Sunday?", "Yes, 10 to 4"]
        suppressed = send(second, token, QUITTER, "Come back, we miss you")
        assert suppressed["status"] == "suppressed" and "opted out" in suppressed["error_reason"]
        numbers = api(second, token, "GET", "/v1/numbers").json()["numbers"]
        assert len({n["number"] for n in numbers}) == len(numbers)  # the seed did not run again
    log = (tmp_path / "second.log").read_text()
    assert "local state restored" in log and "not seeding" in log

    with stack_at(tmp_path, state, "fresh", "--fresh") as fresh:
        token = fresh.token()
        assert conversation(fresh, token, CUSTOMER) is None
        assert conversation(fresh, token, QUITTER) is None
        assert api(fresh, token, "GET", "/v1/numbers").json()["numbers"]  # seeded again
    aside = list((state / "aside").glob("before-fresh-*.json"))
    assert len(aside) == 1 and CUSTOMER in aside[0].read_text()  # moved aside, not deleted


def test_a_killed_stack_keeps_what_its_last_periodic_save_had(tmp_path: Path) -> None:
    """kill -9 skips the shutdown save: the periodic save (here every second) has the data."""
    state, port = tmp_path / "state", free_port()
    env = {**os.environ, "PARLEY_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    env.pop("AWS_ENDPOINT_URL", None)
    command = [sys.executable, "-m", "local", "local", "--port", str(port), "--no-schedules"]
    with (tmp_path / "killed.log").open("w") as out:
        child = subprocess.Popen(
            [*command, "--state-dir", str(state), "--save-every", "1"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        running = StackProcess(f"http://127.0.0.1:{port}", env, tmp_path / "killed.log")

        def healthy() -> bool:
            assert child.poll() is None, running.log_path.read_text()[-3000:]
            try:
                return requests.get(f"{running.base_url}/_local/health", timeout=5).status_code == 200
            except (requests.ConnectionError, requests.Timeout):  # still starting; slow on a busy machine
                return False

        wait_until(healthy, timeout=90, interval=0.2)
        token = running.token()
        texted(running, CUSTOMER, "Saved before the crash?")
        wait_until(lambda: conversation(running, token, CUSTOMER))
        wait_until(lambda: saved_with(state, CUSTOMER), timeout=30, interval=0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=20)
    with stack_at(tmp_path, state, "after-kill") as again:
        assert conversation(again, again.token(), CUSTOMER) is not None


# ----------------------------------------------------------------------------------------------------
# The state file, on moto in this process


@pytest.fixture
def aws(moto_account: None) -> Iterator[tuple[Any, Any]]:
    ddb, s3 = boto3.client("dynamodb", region_name=REGION), boto3.client("s3", region_name=REGION)
    for name, key in (("t-messages", "message_id"), ("t-opt-outs", "customer_number")):
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    s3.create_bucket(Bucket="media")
    yield ddb, s3


TABLES = {"MessagesTable": "t-messages", "OptOutsTable": "t-opt-outs"}


def fill(ddb: Any, s3: Any, n: int = 60) -> None:
    for i in range(n):  # more than one BatchWriteItem on the way back
        ddb.put_item(
            TableName="t-messages",
            Item={"message_id": {"S": f"m{i:03d}"}, "raw": {"B": bytes([i, 0, 255])}, "n": {"N": str(i)}},
        )
    ddb.put_item(
        TableName="t-opt-outs", Item={"customer_number": {"S": QUITTER}, "opted_out": {"BOOL": True}}
    )
    s3.put_object(Bucket="media", Key="media/a.png", Body=b"\x89PNG...", ContentType="image/png")


def empty(ddb: Any, s3: Any) -> None:
    for name in TABLES.values():
        for item in ddb.scan(TableName=name)["Items"]:
            key = "message_id" if "message_id" in item else "customer_number"
            ddb.delete_item(TableName=name, Key={key: item[key]})
    s3.delete_object(Bucket="media", Key="media/a.png")


def test_save_and_restore_round_trip_every_item_and_object(aws: tuple[Any, Any], tmp_path: Path) -> None:
    ddb, s3 = aws
    fill(ddb, s3)
    snapshotter = Snapshotter(ddb, s3, TABLES, {"MediaBucket": "media"})
    StateDir(tmp_path).write(snapshotter.collect())
    empty(ddb, s3)

    state = StateDir(tmp_path).read()
    assert state is not None
    report = snapshotter.restore(state)
    assert report.items == {"MessagesTable": 60, "OptOutsTable": 1} and report.objects == {"MediaBucket": 1}
    assert report.complete and report.new == []
    item = ddb.get_item(TableName="t-messages", Key={"message_id": {"S": "m007"}})["Item"]
    assert item["raw"]["B"] == bytes([7, 0, 255]) and item["n"]["N"] == "7"
    media = s3.get_object(Bucket="media", Key="media/a.png")
    assert media["Body"].read() == b"\x89PNG..." and media["ContentType"] == "image/png"


def test_a_write_never_leaves_a_half_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = StateDir(tmp_path)
    good = {"format": FORMAT, "tables": {"T": {"name": "t", "items": [{"k": {"S": "1"}}]}}, "buckets": {}}
    state.write(good)

    def crash(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)  # the crash comes after the temp file, before the rename
    with pytest.raises(OSError, match="disk full"):
        state.write({**good, "tables": {}})
    assert state.read() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temp file left behind


@pytest.mark.parametrize(
    "content", [b'{"format": 1, "tables": {"T": {"na', b"[]", b'{"format": 99, "tables": {}}', b"\xff\xfe"]
)
def test_an_unreadable_state_is_moved_aside_and_the_stack_starts_empty(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "state.json").write_bytes(content)
    assert StateDir(tmp_path).read() is None
    assert not (tmp_path / "state.json").exists()
    (moved,) = (tmp_path / "aside").glob("unreadable-*.json")
    assert moved.read_bytes() == content  # kept, not deleted
    assert "unreadable" in caplog.text and str(moved) in caplog.text


def test_a_changed_template_restores_what_matches_and_keeps_the_rest(
    aws: tuple[Any, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "local.persist")
    ddb, s3 = aws
    fill(ddb, s3, n=3)
    StateDir(tmp_path).write(Snapshotter(ddb, s3, TABLES, {"MediaBucket": "media"}).collect())
    empty(ddb, s3)
    ddb.create_table(
        TableName="t-new",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # The new template: opt-outs gone, a new table; the media bucket as before.
    now = Snapshotter(ddb, s3, {"MessagesTable": "t-messages", "NewTable": "t-new"}, {"MediaBucket": "media"})
    persistence = Persistence(StateDir(tmp_path), now)
    report = persistence.restore()

    assert report.items == {"MessagesTable": 3} and report.new == ["NewTable"]
    assert report.not_restored == ["table OptOutsTable (1 items)"] and not report.complete
    assert report.kept_copy is not None and QUITTER in report.kept_copy.read_text()
    assert "not restored" in caplog.text and "OptOutsTable" in caplog.text and "NewTable" in caplog.text
    assert len(ddb.scan(TableName="t-messages")["Items"]) == 3


def test_a_second_stack_cannot_use_the_same_state_dir(tmp_path: Path) -> None:
    first = StateDir(tmp_path)
    first.lock()
    try:
        with pytest.raises(StateError, match="another `parley local`"):
            StateDir(tmp_path).lock()
    finally:
        first.unlock()
    StateDir(tmp_path).lock()  # free again once the first let go


def test_nothing_is_saved_before_a_restore_or_without_a_change(aws: tuple[Any, Any], tmp_path: Path) -> None:
    ddb, s3 = aws
    persistence = Persistence(StateDir(tmp_path), Snapshotter(ddb, s3, TABLES, {}))
    assert persistence.save(force=True) is False  # a stack that never finished starting saves nothing
    persistence.restore()
    assert persistence.save() is False and not (tmp_path / "state.json").exists()
    assert persistence.save(force=True) is True and (tmp_path / "state.json").exists()


def test_a_table_whose_key_changed_is_reported_and_the_others_restored(
    aws: tuple[Any, Any], tmp_path: Path
) -> None:
    ddb, s3 = aws
    fill(ddb, s3, n=2)
    StateDir(tmp_path).write(Snapshotter(ddb, s3, TABLES, {}).collect())
    ddb.create_table(  # the Messages table now keyed by `id`: the saved items no longer fit
        TableName="t-rekeyed",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.delete_item(TableName="t-opt-outs", Key={"customer_number": {"S": QUITTER}})
    moved = {"MessagesTable": "t-rekeyed", "OptOutsTable": "t-opt-outs"}

    report = Persistence(StateDir(tmp_path), Snapshotter(ddb, s3, moved, {})).restore()

    assert report.items == {"OptOutsTable": 1} and report.not_restored == [
        "table MessagesTable (ClientError)"
    ]
    assert ddb.scan(TableName="t-rekeyed")["Items"] == []
    assert report.kept_copy is not None and "m001" in report.kept_copy.read_text()


def test_the_cli_refuses_what_cannot_be_meant(capsys: pytest.CaptureFixture[str]) -> None:
    from local import cli

    assert cli.main(["local", "--no-persist", "--fresh"]) == 2
    assert "--fresh needs a state" in capsys.readouterr().err
    assert cli.main(["local", "--save-every", "0"]) == 2
    assert "--save-every must be more than 0" in capsys.readouterr().err


def test_the_default_state_dir_is_in_the_project_unless_the_environment_says_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from local.cli import default_state_dir

    monkeypatch.delenv("PARLEY_LOCAL_STATE_DIR", raising=False)
    assert default_state_dir() == ROOT / ".parley" / "local-state"
    assert ".parley/" in (ROOT / ".gitignore").read_text().splitlines()
    monkeypatch.setenv("PARLEY_LOCAL_STATE_DIR", str(tmp_path / "elsewhere"))
    assert default_state_dir() == tmp_path / "elsewhere"
