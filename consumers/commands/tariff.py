"""`ledger tariff explain` and `ledger tariff lint`: an OCPI 2.2.1 tariff in plain words, and
what is wrong with it, before it prices a session.

- `explain --tariff T [--language en|de|nl] [--time-zone Z]` prints every element: what it
  charges, when it applies, steps, VAT, minimum and maximum (ledger/domain/tariff_explanation).
- `lint --tariff T` prints each finding as `severity: where: message [code]` and a count;
  exit 1 when a finding is fatal (the ledger would refuse the tariff at publication), 0
  otherwise (ledger/domain/tariff_lint). Bad arguments or unreadable files exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consumers.cli import CliError
from consumers.commands.price import load_time_zone, read_tariff, read_text
from ledger.domain.tariff_explanation import LANGUAGES, explain_tariff
from ledger.domain.tariff_lint import Severity, fatal, lint_tariff_text

EXIT_FATAL_FINDINGS = 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tariff",
        help="explain an OCPI 2.2.1 tariff in plain words, or lint it",
        description="Explain an OCPI 2.2.1 tariff in plain words, or check it for mistakes.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    explain = actions.add_parser("explain", help="every element in plain words")
    explain.add_argument("--tariff", required=True, type=Path, metavar="TARIFF.json")
    explain.add_argument("--language", default="en", choices=sorted(LANGUAGES))
    explain.add_argument(
        "--time-zone",
        default="UTC",
        metavar="ZONE",
        help="IANA time zone of the locations (restriction times are their local times)",
    )
    explain.set_defaults(handler=run_explain)
    lint = actions.add_parser("lint", help="check a tariff; exit 1 on fatal findings")
    lint.add_argument("--tariff", required=True, type=Path, metavar="TARIFF.json")
    lint.set_defaults(handler=run_lint)


def run_explain(args: argparse.Namespace) -> int:
    time_zone = load_time_zone(args.time_zone)
    tariff = read_tariff(args.tariff)
    for line in explain_tariff(tariff, args.language, time_zone):
        sys.stdout.write(line + "\n")
    return 0


def run_lint(args: argparse.Namespace) -> int:
    try:
        text = read_text(args.tariff)
    except ValueError as exc:
        raise CliError(f"tariff file {args.tariff}: {exc}") from exc
    findings = lint_tariff_text(text)
    for finding in findings:
        sys.stdout.write(f"{finding}\n")
    fatal_count = len(fatal(findings))
    warnings = sum(f.severity is Severity.WARNING for f in findings)
    sys.stdout.write(f"{fatal_count} fatal, {warnings} warnings\n")
    return EXIT_FATAL_FINDINGS if fatal_count else 0
