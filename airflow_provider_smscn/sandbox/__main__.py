"""``smscn-sandbox``: run the emulated sms.cn voice API as a process.

The first line on stdout is the base URL (``http://127.0.0.1:PORT/voice/``), flushed, so a script
or a test can start it with ``--port 0`` and read where it listens. The process serves until
SIGTERM or SIGINT. Without options it serves the document's example account (uid ``test``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_smscn.sandbox.accounts import AccountConfig


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    result = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"smscn-sandbox: {what} must look like KEY=VALUE, got {item!r}")
        result[key.strip()] = value
    return result


def _weights(text: str) -> dict[str, float]:
    weights = {}
    for item in text.split(","):
        code, sep, weight = item.partition("=")
        if not sep:
            raise SystemExit(f"smscn-sandbox: --outcomes must look like 100=90,130=10, got {text!r}")
        weights[code.strip()] = float(weight)
    return weights


def _fault(text: str) -> dict[str, Any]:
    """``KIND[:key=value,...]``, values read as JSON when they parse (numbers, true/false)."""
    import json

    kind, _, rest = text.partition(":")
    spec: dict[str, Any] = {"kind": kind.strip()}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"smscn-sandbox: --fault parameters must be key=value, got {item!r}")
        try:
            spec[key.strip()] = json.loads(value)
        except ValueError:
            spec[key.strip()] = value
    return spec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smscn-sandbox",
        description="A local emulator of the sms.cn voice verification code API (/voice/).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
    parser.add_argument("--config", metavar="FILE",
                        help="JSON file: one account object, or {accounts, report_delay, seed, faults}")
    parser.add_argument("--report-delay", type=float, metavar="S",
                        help="seconds from a send until its reports are pullable (default: the config's, "
                             "else 1; accounts may set their own)")
    parser.add_argument("--seed", type=int, metavar="N",
                        help="seeds report outcomes and generated message ids (default: the config's, "
                             "else random)")
    parser.add_argument("--latency-ms", type=float, default=0, metavar="MS",
                        help="added before every request (a latency fault)")
    parser.add_argument("--delay-after-ms", type=float, default=0, metavar="MS",
                        help="held after processing, before replying (a delay_after fault)")
    parser.add_argument("--fault", action="append", metavar="KIND[:k=v,...]",
                        help="repeatable; values parsed as JSON when they parse, "
                             "e.g. http_status:status=503,count=2,action=sendcode")
    parser.add_argument("--verbose", action="store_true", help="one masked line per request on stderr")
    account = parser.add_argument_group("account options (override fields of the first account of "
                                        "--config, else of the example account)")
    account.add_argument("--uid", help="account name (field uid)")
    account.add_argument("--password", help="login password (field password)")
    account.add_argument("--secret-key", help="secret key for tokenkey signing (field secret_key)")
    account.add_argument("--balance", type=int, metavar="N",
                         help="balance units, one per number called (field balance)")
    account.add_argument("--template", action="append", metavar="ID=TEXT",
                         help="repeatable; replaces the template set: give 700001 again to keep it "
                              "(field templates)")
    account.add_argument("--bound-ip", action="append", metavar="ADDRESS",
                         help="repeatable; address or CIDR; others get 117 (field bound_ips)")
    account.add_argument("--rate-limit", type=int, metavar="N",
                         help="requests a second (0: none; default 50); beyond: 107 "
                              "(field rate_limit_per_second)")
    account.add_argument("--hourly-cap", type=int, metavar="N",
                         help="calls in the last 3600 s; beyond: 151 (field hourly_cap)")
    account.add_argument("--daily-cap", type=int, metavar="N",
                         help="calls per Beijing day; beyond: 152 (field daily_cap)")
    account.add_argument("--frozen", action="store_true", default=None,
                         help="every request: 109 (field frozen)")
    account.add_argument("--dedup-mobileids", action="store_true", default=None,
                         help="a message id used before: 124, not in the document (field dedup_mobileids)")
    account.add_argument("--max-numbers", type=int, metavar="N",
                         help="numbers per send (default 1000); beyond: 106 (field max_numbers)")
    account.add_argument("--max-reports-per-pull", type=int, metavar="N",
                         help="default 100 (field max_reports_per_pull)")
    account.add_argument("--outcomes", metavar="CODE=W,...",
                         help="report outcome weights, e.g. 100=90,131=10 (field outcomes)")
    account.add_argument("--outcome-for", action="append", metavar="MOBILE=CODE",
                         help="repeatable; fixed outcome for a number (field outcome_by_mobile)")
    return parser


def _accounts(args: argparse.Namespace, configured: list[AccountConfig]) -> list[AccountConfig]:
    from airflow_provider_smscn.sandbox.accounts import AccountConfig, example_account

    overrides: dict[str, Any] = {}
    simple = {
        "password": args.password,
        "secret_key": args.secret_key,
        "balance": args.balance,
        "bound_ips": args.bound_ip,
        "rate_limit_per_second": args.rate_limit,
        "hourly_cap": args.hourly_cap,
        "daily_cap": args.daily_cap,
        "frozen": args.frozen,
        "dedup_mobileids": args.dedup_mobileids,
        "max_numbers": args.max_numbers,
        "max_reports_per_pull": args.max_reports_per_pull,
    }
    overrides.update({k: v for k, v in simple.items() if v is not None})
    if args.template:
        overrides["templates"] = _pairs(args.template, "--template")
    if args.outcomes:
        overrides["outcomes"] = _weights(args.outcomes)
    if args.outcome_for:
        overrides["outcome_by_mobile"] = _pairs(args.outcome_for, "--outcome-for")
    accounts = list(configured) or [example_account()]
    first = accounts[0]
    if args.uid:
        first = dataclasses.replace(first, uid=AccountConfig.from_mapping({"uid": args.uid}).uid)
    accounts[0] = first.updated(overrides)
    return accounts


def main(argv: Sequence[str] | None = None) -> None:
    """Parse options, start the sandbox, print its URL, serve until terminated."""
    from airflow_provider_smscn.sandbox import Sandbox
    from airflow_provider_smscn.sandbox.accounts import AccountConfigError, load_config
    from airflow_provider_smscn.sandbox.faults import FaultError

    args = build_parser().parse_args(argv)
    config: dict[str, Any] = {"accounts": [], "report_delay": None, "seed": None, "faults": []}
    try:
        if args.config:
            config = load_config(args.config)
        accounts = _accounts(args, config["accounts"])
        faults = list(config["faults"]) + [_fault(f) for f in args.fault or []]
        if args.delay_after_ms:
            faults.insert(0, {"kind": "delay_after", "ms": args.delay_after_ms})
        report_delay = args.report_delay if args.report_delay is not None else config["report_delay"]
        sandbox = Sandbox(
            port=args.port,
            host=args.host,
            accounts=accounts,
            report_delay=1.0 if report_delay is None else report_delay,
            seed=args.seed if args.seed is not None else config["seed"],
            faults=faults,
            latency_ms=args.latency_ms,
            verbose=args.verbose,
        )
    except (OSError, ValueError, AccountConfigError, FaultError) as exc:
        raise SystemExit(f"smscn-sandbox: {exc}") from None
    if args.verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        sandbox.start(poll_interval=0.1)
    except OSError as exc:
        raise SystemExit(f"smscn-sandbox: cannot listen on {args.host}:{args.port}: {exc}") from None
    print(sandbox.url, flush=True)
    print(
        f"smscn-sandbox: serving {sandbox.url} (control API {sandbox.control_url})",
        file=sys.stderr,
        flush=True,
    )
    try:
        while True:
            sandbox.state.stopping.wait(3600)
    except KeyboardInterrupt:
        pass
    finally:
        # a second signal (a supervisor sends SIGTERM after SIGINT) must not break the shutdown
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sandbox.stop()


if __name__ == "__main__":
    main()
