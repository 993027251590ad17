"""`parley`: run the local stack and poke it (tokens, simulated inbound SMS, digest runs, dead letters).

Expected failures (bad arguments, the stack not running, an HTTP error) print one line starting with
`parley: ` and exit non-zero; a traceback means a bug in Parley, not in how it was called.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from datetime import date
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO

import requests

from local.auth import DEFAULT_TTL_SECONDS, DevTokenError, dev_jwt_secret, issue_dev_token

log = logging.getLogger(__name__)

# `parley digest` follows the run it starts: how often it asks, how often it writes a plain progress
# line when stderr is not a terminal, and how long a run may stay unknown after it was started.
POLL_SECONDS = 0.5
PLAIN_EVERY_SECONDS = 5.0
NOT_FOUND_GRACE_SECONDS = 5.0


class CliError(Exception):
    """One line for stderr; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one `parley: ...` line (exit 2) instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("parley").strip()
        raise CliError(f"{where}: {message}" if where else message, 2)


def _default_base() -> str:
    return f"http://127.0.0.1:{os.environ.get('PARLEY_PORT', '3000')}"


def _find_template() -> Path:
    candidates = [Path(__file__).resolve().parent.parent / "template.yaml", Path.cwd() / "template.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise CliError(f"no template.yaml at {candidates[0].parent} or in the current directory")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="parley", description="Parley local tools (no Docker, no AWS account).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p_local = sub.add_parser("local", help="run the whole stack locally (what `make dev` runs)")
    p_local.add_argument("--port", type=int, default=None, help="HTTP port (default $PARLEY_PORT or 3000)")
    p_local.add_argument("--host", default="127.0.0.1")
    p_local.add_argument("--no-schedules", action="store_true", help="fire schedules only on demand")
    p_local.add_argument("--no-seed", action="store_true", help="start with empty tables")
    p_local.add_argument(
        "--template", type=Path, default=None, help="default: template.yaml at the repo root"
    )
    p_local.add_argument("--verbose", "-v", action="store_true", help="debug logs (routes, each invocation)")
    p_local.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the tables and media are kept between runs (default $PARLEY_LOCAL_STATE_DIR or "
        ".parley/local-state/ in the project; with --template, only when given)",
    )
    p_local.add_argument(
        "--fresh",
        action="store_true",
        help="start clean: the saved data is moved to <state dir>/aside/before-fresh-<time>.json (not "
        "deleted; remove it when you like), then the demo data is seeded",
    )
    p_local.add_argument(
        "--no-persist", action="store_true", help="keep everything in memory: read and write no state"
    )
    p_local.add_argument(
        "--save-every",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="save this often when something changed (default 30; always on a clean stop)",
    )

    p_token = sub.add_parser("token", help="print a dev JWT for the local /v1 API")
    p_token.add_argument("--user", required=True)
    p_token.add_argument("--team", help="one team (the same as --teams with one name)")
    p_token.add_argument("--teams", help="the user's teams, comma-separated: sales,support")
    p_token.add_argument("--admin", action="store_true", help="the admin role: sees every team")
    p_token.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECONDS, help="seconds (default 12 h)")

    p_sim = sub.add_parser("sim", help="drive the simulators")
    sim_sub = p_sim.add_subparsers(dest="sim_command", required=True, parser_class=_Parser)
    p_sms = sim_sub.add_parser("sms", help="a customer texts one of our numbers (via a simulated carrier)")
    p_sms.add_argument(
        "--carrier", default="twilio", help="which simulated carrier delivers it (default twilio)"
    )
    p_sms.add_argument("--from", dest="from_", required=True, metavar="NUMBER")
    p_sms.add_argument("--to", required=True, metavar="OUR_NUMBER")
    p_sms.add_argument("--body", required=True)
    p_sms.add_argument("--repeat", type=int, default=1)
    p_sms.add_argument(
        "--lost",
        action="store_true",
        help="the carrier keeps the text but its webhook never reaches us (Twilio only; the missed-"
        "webhook sweep finds it)",
    )
    p_sms.add_argument(
        "--url", default=None, help="local stack base URL (default http://127.0.0.1:$PARLEY_PORT)"
    )

    p_numbers = sub.add_parser("numbers", help="list our numbers and the webhook URLs to give each carrier")
    p_numbers.add_argument("--url", default=None, help="local stack base URL")

    p_digest = sub.add_parser(
        "digest", help="run the CRM digest of one day now (POST /v1/crm/digest) and follow it to the end"
    )
    p_digest.add_argument("--day", required=True, help="YYYY-MM-DD")
    p_digest.add_argument("--url", default=None, help="local stack base URL")
    p_digest.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the run to finish (default 600)"
    )

    p_dlq = sub.add_parser("dlq", help="the dead-letter queues: list what sits there, send it back")
    dlq_sub = p_dlq.add_subparsers(dest="dlq_command", required=True, parser_class=_Parser)
    p_dlq_list = dlq_sub.add_parser("list", help="each DLQ's depth and its messages (numbers masked)")
    p_dlq_redrive = dlq_sub.add_parser("redrive", help="move dead letters back to their work queue")
    for p in (p_dlq_list, p_dlq_redrive):
        p.add_argument(
            "--queue", choices=["inbound", "send", "retry", "digest"], action="append", default=None
        )
        p.add_argument("--limit", type=int, default=100, help="at most this many per queue (default 100)")
        p.add_argument("--url", default=None, help="local stack base URL (the default target)")
        p.add_argument("--stack-name", default=None, help="a deployed stack (your AWS credentials)")
        p.add_argument("--region", default=None, help="with --stack-name (default: your AWS config)")
    p_dlq_redrive.add_argument(
        "--id",
        dest="ids",
        action="append",
        default=None,
        metavar="MESSAGE_ID",
        help="only these (repeatable)",
    )

    p_status = sub.add_parser(
        "status",
        help="queue depths, dead letters, recent failures and the last digest run (exit 3: needs attention)",
        description="One look at Parley's health. Exit status: 0 all clear; 3 something needs attention "
        "(a dead-letter queue holds messages, the last digest run had failures or stopped part way); "
        "1 the status could not be read; 2 bad arguments.",
    )
    p_status.add_argument("--url", default=None, help="local stack base URL (the default target)")
    p_status.add_argument("--stack-name", default=None, help="a deployed stack (your AWS credentials)")
    p_status.add_argument("--region", default=None, help="with --stack-name (default: your AWS config)")
    p_status.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    p_status.add_argument(
        "--failures", type=int, default=5, help="how many recent failed messages to show (default 5)"
    )
    p_status.add_argument(
        "--peek", type=int, default=3, help="dead letters shown per DLQ (default 3; 0: depths only)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "local":
            return _cmd_local(args)
        if args.command == "token":
            return _cmd_token(args)
        if args.command == "sim":
            return _cmd_sim_sms(args)
        if args.command == "digest":
            return _cmd_digest(args)
        if args.command == "numbers":
            return _cmd_numbers(args)
        if args.command == "dlq":
            return _cmd_dlq(args)
        if args.command == "status":
            return _cmd_status(args)
        raise CliError(f"unknown command {args.command}", 2)
    except CliError as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


# -- commands


def _cmd_token(args: argparse.Namespace) -> int:
    try:
        teams = [args.team] if args.team else []
        teams += [t for t in (args.teams or "").split(",") if t.strip()]
        if not teams:
            raise CliError("give --team or --teams (comma-separated)", 2)
        roles = ["admin"] if args.admin else None
        token = issue_dev_token(
            args.user, teams=teams, roles=roles, secret=dev_jwt_secret(), ttl_seconds=args.ttl
        )
        print(token)
    except DevTokenError as exc:
        raise CliError(str(exc), 2) from exc
    return 0


def _post(url: str, base: str, **kwargs: Any) -> requests.Response:
    try:
        response = requests.post(url, timeout=kwargs.pop("timeout", 30), **kwargs)
    except requests.ConnectionError as exc:
        raise CliError(f"can't reach the local stack at {base} — is `make dev` running?") from exc
    except requests.Timeout as exc:
        raise CliError(f"the local stack at {base} did not answer in time") from exc
    if response.status_code >= 400:
        raise CliError(f"{url} answered {response.status_code}: {_reason(response)}")
    return response


def _reason(response: requests.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason
    if isinstance(payload, dict):
        for key in ("message", "error", "errorMessage", "detail"):
            if payload.get(key):
                return str(payload[key])
    return json.dumps(payload)[:200]


def _cmd_sim_sms(args: argparse.Namespace) -> int:
    if args.repeat < 1:
        raise CliError("--repeat must be at least 1", 2)
    base = (args.url or _default_base()).rstrip("/")
    url = f"{base}/_sim/{args.carrier}/_inbound"
    payload = {"from": args.from_, "to": args.to, "body": args.body, "repeat": args.repeat}
    if args.lost:
        payload["lost"] = True
    response = _post(url, base, json=payload)
    try:
        result: Any = response.json()
    except ValueError as exc:
        raise CliError(f"{url} answered {response.status_code} without JSON") from exc
    result = result if isinstance(result, dict) else {}
    sid = next(
        (
            str(result[k])
            for k in ("message_sid", "message_id", "message_uuid", "inbound_message_id")
            if result.get(k)
        ),
        "?",
    )
    codes = result.get("responses") or []
    answered = ", ".join("no answer" if c is None else str(c) for c in codes) or "?"
    if args.lost:
        print(f"{sid} kept by the carrier; no webhook was posted")
        return 0
    print(f"{sid} webhook answered {answered}")
    if not codes or any(c is None or int(c) >= 300 for c in codes):
        raise CliError(f"our webhook did not accept {sid} (answered {answered}); see the `make dev` log")
    return 0


def _cmd_numbers(args: argparse.Namespace) -> int:
    base = (args.url or _default_base()).rstrip("/")
    # admin: every team's numbers, not only team default's and the pool
    token = issue_dev_token(
        "parley-cli", "default", roles=["admin"], secret=dev_jwt_secret(), ttl_seconds=300
    )
    try:
        response = requests.get(
            f"{base}/v1/numbers", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
    except requests.ConnectionError as exc:
        raise CliError(f"can't reach the local stack at {base} — is `make dev` running?") from exc
    if response.status_code >= 400:
        raise CliError(f"{base}/v1/numbers answered {response.status_code}: {_reason(response)}")
    numbers = response.json().get("numbers", [])
    if not numbers:
        print("no numbers configured")
        return 0
    for n in numbers:
        tags = [
            tag
            for tag, on in (
                ("default", n.get("is_default")),
                ("smart encoding", n.get("smart_encoding")),
                ("opt-outs per number", n.get("opt_out_scope") == "number"),
            )
            if on
        ]
        flags = f" ({', '.join(tags)})" if tags else ""
        print(f"{n['number']}  {n['carrier']}  team {n.get('team')}  owner {n.get('owner') or '-'}{flags}")
        for url in n.get("webhooks", []):
            print(f"    {url}")
    return 0


def _cmd_digest(args: argparse.Namespace) -> int:
    """Start the day's run through the API, as a person or a script would, and wait for its counts:
    with the digest queue its shards run in parallel, so the POST alone says nothing of the result."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", args.day):
        raise CliError(f"--day must be a date like 2024-05-31 (got {args.day!r})", 2)
    try:
        date.fromisoformat(args.day)
    except ValueError as exc:
        raise CliError(f"--day {args.day} is not a real date: {exc}", 2) from exc
    if not args.timeout > 0:
        raise CliError(f"--timeout must be more than 0 seconds (got {args.timeout:g})", 2)
    base = (args.url or _default_base()).rstrip("/")
    try:  # the token must outlive the polling
        token = issue_dev_token(
            "parley-cli", "default", secret=dev_jwt_secret(), ttl_seconds=int(args.timeout) + 120
        )
    except DevTokenError as exc:
        raise CliError(str(exc), 2) from exc
    headers = {"Authorization": f"Bearer {token}"}
    # without a digest queue the stack runs the whole day within this request
    _post(f"{base}/v1/crm/digest", base, json={"day": args.day}, headers=headers, timeout=args.timeout)
    run = _follow_digest(base, args.day, headers, timeout=args.timeout, out=sys.stderr)
    counts = _counts(run)
    print(json.dumps({"day": args.day, **counts}, indent=2, sort_keys=True))
    failed = int(counts.get("failed", 0) or 0)
    if failed:
        failures = run.get("failures") or []
        first = failures[0].get("reason") if failures and isinstance(failures[0], dict) else None
        raise CliError(
            f"{failed} record(s) failed to reach the CRM"
            + (f" (first: {first})" if first else "")
            + f"; each is listed in GET {base}/v1/crm/digest/{args.day} (the first 20) and in the "
            "digest function's log (the `make dev` output)"
        )
    return 0


def _follow_digest(
    base: str, day: str, headers: dict[str, str], *, timeout: float, out: TextIO
) -> dict[str, Any]:
    """Poll the run until it is finished: a bar redrawn in place on a terminal, else a plain line every
    few seconds (CI logs). Answers the finished run; a run that outlasts `timeout` is a CliError."""
    url = f"{base}/v1/crm/digest/{day}"
    tty = out.isatty()
    started = time.monotonic()
    deadline = started + timeout
    last_line = float("-inf")
    drawn = False
    try:
        while True:
            now = time.monotonic()
            run = _get_run(url, base, headers, timeout=max(1.0, min(30.0, deadline - now)))
            now = time.monotonic()
            if run is None and now - started >= NOT_FOUND_GRACE_SECONDS:
                raise CliError(f"{url} answered 404: the stack has no digest run for {day}")
            finished = run is not None and bool(run.get("finished"))
            if run is not None and tty:
                out.write(f"\r{_digest_bar(run)} {_digest_progress(run)}\x1b[K")
                out.flush()
                drawn = True
            elif run is not None and (finished or now - last_line >= PLAIN_EVERY_SECONDS):
                print(f"digest {day}: {_digest_progress(run)}", file=out, flush=True)
                last_line = now
            if finished:
                assert run is not None
                return run
            if now >= deadline:
                where = f" ({_digest_progress(run)})" if run is not None else ""
                raise CliError(
                    f"the digest of {day} did not finish within {timeout:g} s{where}; it goes on in the "
                    f"stack: follow it with GET {url}"
                )
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - now)))
    finally:
        if drawn:
            out.write("\n")
            out.flush()


def _get_run(url: str, base: str, headers: dict[str, str], *, timeout: float) -> dict[str, Any] | None:
    """The run's progress, or None while the stack has none for the day (404)."""
    try:
        response = requests.get(url, headers=headers, timeout=timeout)
    except requests.ConnectionError as exc:
        raise CliError(f"can't reach the local stack at {base} — is `make dev` running?") from exc
    except requests.Timeout as exc:
        raise CliError(f"the local stack at {base} did not answer in time") from exc
    if response.status_code == 404:
        return None
    if response.status_code >= 400:
        raise CliError(f"{url} answered {response.status_code}: {_reason(response)}")
    try:
        run = response.json()
    except ValueError as exc:
        raise CliError(f"{url} answered {response.status_code} without JSON") from exc
    if not isinstance(run, dict):
        raise CliError(f"{url} answered {response.status_code} with {type(run).__name__}, not an object")
    return run


def _counts(run: dict[str, Any]) -> dict[str, Any]:
    counts = run.get("counts")
    return counts if isinstance(counts, dict) else {}


def _digest_progress(run: dict[str, Any]) -> str:
    counts = _counts(run)
    posted = int(counts.get("created", 0) or 0) + int(counts.get("updated", 0) or 0)
    failed = int(counts.get("failed", 0) or 0)
    text = (
        f"{run.get('shards_done', 0)}/{run.get('shards', 0)} shards, "
        f"{counts.get('conversations', 0)} conversations, {posted} records posted"
    )
    return text + (f", {failed} failed" if failed else "")


def _digest_bar(run: dict[str, Any], width: int = 24) -> str:
    shards = max(int(run.get("shards", 0) or 0), 1)
    done = min(max(int(run.get("shards_done", 0) or 0), 0), shards)  # whatever the stack answers
    filled = width * done // shards
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _cmd_dlq(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from local.dlq import QUEUES, DeadLetters, DlqError, summary

    if args.limit < 1:
        raise CliError("--limit must be at least 1", 2)
    try:
        if args.stack_name:
            target = DeadLetters.deployed(args.stack_name, args.region)
        else:
            target = DeadLetters.local((args.url or _default_base()).rstrip("/"))
        queues = args.queue or list(QUEUES)
        if args.dlq_command == "list":
            for name in queues:
                depth = target.depth(name)
                print(f"{name} DLQ: {depth['visible']} waiting, {depth['in_flight']} in flight")
                letters = target.receive(name, args.limit)
                try:
                    for x in letters:
                        print(
                            f"  {x.message_id}  sent {x.sent_at or '-'}  first received "
                            f"{x.first_received_at or '-'}  receives {x.receive_count}"
                        )
                        print(f"    {summary(x.body)}")
                finally:
                    target.release(name, letters)
            return 0
        wanted = set(args.ids or [])
        moved = 0
        for name in queues:
            letters = target.receive(name, args.limit)
            chosen = [x for x in letters if not wanted or x.message_id in wanted]
            try:
                for x in chosen:
                    target.redrive(name, x)
                    wanted.discard(x.message_id)
                    moved += 1
                    print(f"{name}: {x.message_id} sent back to the {name} queue")
            finally:
                target.release(name, [x for x in letters if x not in chosen])
        print(f"{moved} message(s) redriven")
        if args.ids and wanted:
            raise CliError(f"not found in the dead-letter queues: {', '.join(sorted(wanted))}")
        return 0
    except DlqError as exc:
        raise CliError(str(exc)) from exc
    except (BotoCoreError, ClientError) as exc:
        raise CliError(f"SQS: {exc}") from exc


def _cmd_status(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from local.dlq import DlqError
    from local.status import ATTENTION_EXIT, StatusError, deployed_sources, local_sources, read_status, render

    if not 0 <= args.failures <= 100:
        raise CliError("--failures must be from 0 to 100", 2)
    if not 0 <= args.peek <= 10:
        raise CliError("--peek must be from 0 to 10", 2)
    if args.region and not args.stack_name:
        raise CliError("--region goes with --stack-name", 2)
    try:
        if args.stack_name:
            sources = deployed_sources(args.stack_name, args.region)
        else:
            sources = local_sources((args.url or _default_base()).rstrip("/"))
        report = read_status(sources, peek=args.peek, failures=args.failures)
    except (StatusError, DlqError) as exc:
        raise CliError(str(exc)) from exc
    except (BotoCoreError, ClientError) as exc:
        raise CliError(f"AWS: {exc}") from exc
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else render(report))
    return ATTENTION_EXIT if report["attention"] else 0


# Deploy-time parameters without defaults. Locally the front verifies dev tokens itself, so these
# only need to be well-formed.
LOCAL_PARAMETERS = {
    "JwtIssuer": "https://parley.local/dev",
    "JwtAudience": "parley",
    "OrgName": "Parley local",
}


def _cmd_local(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("botocore", "boto3", "urllib3", "samtranslator", "pynamodb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from local.http_front import default_port
    from local.runtime import LocalStack, LocalStackError
    from local.template import TemplateError

    template = args.template or _find_template()
    port = args.port if args.port is not None else default_port()
    if not args.save_every > 0:
        raise CliError(f"--save-every must be more than 0 seconds (got {args.save_every:g})", 2)
    state_dir = _state_dir(args)
    if args.fresh and state_dir is None:
        raise CliError("--fresh needs a state to start over from (drop --no-persist, or give --state-dir)", 2)
    stack = LocalStack(
        template,
        port=port,
        host=args.host,
        auto_schedules=not args.no_schedules,
        seed=not args.no_seed,
        parameters=LOCAL_PARAMETERS if args.template is None else None,
        state_dir=state_dir,
        fresh=args.fresh,
        save_interval=args.save_every,
    )
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("got %s, stopping", signal.Signals(signum).name)
        stopping.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            stack.start()
        except (LocalStackError, TemplateError) as exc:
            raise CliError(str(exc)) from exc
        except Exception as exc:  # handler import errors, provisioning errors: one line, details in the log
            log.debug("start failed", exc_info=True)
            raise CliError(f"the local stack failed to start: {exc}") from exc
        _print_banner(stack)
        stopping.wait()
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def default_state_dir() -> Path:
    """`make dev` keeps its data here: $PARLEY_LOCAL_STATE_DIR, else .parley/local-state/ (gitignored)."""
    configured = os.environ.get("PARLEY_LOCAL_STATE_DIR", "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parent.parent / ".parley" / "local-state"


def _state_dir(args: argparse.Namespace) -> Path | None:
    """Persistence is for the project's own stack; another template (a test fixture) only keeps its
    data in a directory given on the command line, so it never writes over a developer's state."""
    if args.no_persist:
        return None
    if args.state_dir is not None:
        return Path(args.state_dir)
    if args.template is not None:
        return None
    return default_state_dir()


def _print_banner(stack: Any) -> None:
    base = stack.base_url
    token = issue_dev_token("dev", "default", secret=dev_jwt_secret())
    lines = [
        "",
        "Parley is running locally (Ctrl-C to stop)",
        f"  web inbox         {base}/  (sign in with any user and team)",
        f"  API               {base}/v1/...",
        f"  carrier webhooks  {base}/webhooks/{{carrier}}/{{kind}}",
        *(
            f"  {'simulated ' + name:<17} {base}/_sim/{name}"  # a long name still gets its space
            for name in sorted(stack.simulators)
            if name != "crm"
        ),
        f"  simulated CRM     {base}/_sim/crm" + ("" if "crm" in stack.simulators else "  (not available)"),
        "  our numbers       parley numbers  (which carrier serves each, and its webhook URLs)",
        f"  health            {base}/_local/health",
        f"  queues            {base}/_local/queues",
        f"  moto (AWS)        {stack.endpoint_url}",
        f"  data kept in      {stack.state_dir}  (`parley local --fresh` starts clean)"
        if stack.state_dir is not None
        else "  data              in memory only (lost when it stops)",
        "  health view       parley status",
        "",
        "Dev token (user dev, team default, 12 h):",
        f"  export TOKEN={token}",
        f'  curl -H "Authorization: Bearer $TOKEN" {base}/v1/conversations',
        "",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
