"""`python -m scanning scan IMAGE --db FILE`: analyse an image and match it against advisories.

``IMAGE`` is a registry reference (``alpine:3.10``, ``myregistry.azurecr.io/app@sha256:…``),
``oci:DIR[:REF]`` or ``docker-archive:FILE``. The analysis pipeline (``scanning.analysis``)
produces one inventory per platform; each is matched with ``scanning.matching`` and printed in
the chosen format. Exit code: ``--exit-code`` (default 0) when any finding remains after the
filters, 2 when the analysis failed, else 0.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scanning.advisories.index import AdvisoryIndex, load_index
from scanning.assessment import ImageRef, assess_inventories
from scanning.commands import credentials
from scanning.errors import BadRequest
from scanning.matching import match_inventory, package_ecosystems
from scanning.model import AssessmentStatus, Platform, Severity
from scanning.registry import BasicCredentials
from scanning.report import (
    PlatformReport,
    ScanReport,
    filter_findings,
    render_cyclonedx,
    render_json,
    render_sarif,
    render_table,
    report_packages,
)

FORMATS = ("table", "json", "sarif", "cyclonedx")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "scan", help="scan an image for known vulnerabilities"
    )
    parser.add_argument(
        "image", help="REGISTRY/REPO[:TAG][@DIGEST], oci:DIR[:REF] or docker-archive:FILE"
    )
    parser.add_argument("--db", type=Path, required=True, metavar="FILE", help="advisory index")
    parser.add_argument(
        "--platform", default="all", help="all (default) or OS/ARCH[/VARIANT] of an index"
    )
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument(
        "--severity",
        default="",
        metavar="LEVELS",
        help="comma-separated severities to show, e.g. critical,high (default: all)",
    )
    parser.add_argument(
        "--ignore-unfixed", action="store_true", help="show only findings that have a fix"
    )
    parser.add_argument(
        "--exit-code",
        type=int,
        default=0,
        metavar="N",
        help="exit with N when findings remain after the filters (default 0)",
    )
    parser.add_argument(
        "--fail-on",
        default="",
        metavar="STATUSES",
        help="comma-separated statuses that also exit with --exit-code: unsupported, partial, "
             "failed (a CI gate then cannot pass on what was not seen)",
    )
    parser.add_argument(
        "--base-layers",
        type=int,
        default=0,
        metavar="N",
        help="the first N layers come from the base image (remediation says: rebuild)",
    )
    parser.add_argument("--output", type=Path, default=None, metavar="FILE")
    credentials.add_arguments(parser)
    parser.set_defaults(handler=run)


def parse_severities(text: str) -> tuple[Severity, ...]:
    if not text.strip():
        return ()
    severities = []
    for word in text.split(","):
        value = word.strip().lower()
        try:
            severities.append(Severity(value))
        except ValueError as error:
            allowed = ", ".join(s.value for s in Severity)
            raise BadRequest(f"unknown severity {word!r}; use {allowed}") from error
    return tuple(severities)


FAIL_ON_STATUSES = (AssessmentStatus.UNSUPPORTED, AssessmentStatus.PARTIAL,
                    AssessmentStatus.FAILED)


def parse_fail_on(text: str) -> frozenset[AssessmentStatus]:
    statuses = set()
    for word in (part.strip().lower() for part in text.split(",") if part.strip()):
        try:
            status = AssessmentStatus(word)
        except ValueError:
            status = None
        if status not in FAIL_ON_STATUSES:
            allowed = ", ".join(s.value for s in FAIL_ON_STATUSES)
            raise BadRequest(f"--fail-on: unknown status {word!r}; use {allowed}")
        statuses.add(status)
    return frozenset(statuses)


def run(args: argparse.Namespace) -> int:
    severities = parse_severities(args.severity)
    fail_on = parse_fail_on(args.fail_on)
    platform = None
    if args.platform != "all":
        try:
            platform = Platform.parse(args.platform)
        except ValueError as error:
            raise BadRequest(str(error)) from error
    index = load_index(args.db)
    report = scan_image(args.image, index, platform=platform, base_layers=args.base_layers,
                        registry_credentials=credentials.from_args(args))
    shown = filter_findings(report, severities=severities, ignore_unfixed=args.ignore_unfixed)
    text = render(shown, args.format)
    if args.output is not None:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    gated = any(p.findings or p.status in fail_on for p in shown.platforms)
    if gated and args.exit_code:
        return int(args.exit_code)
    if any(p.status == AssessmentStatus.FAILED for p in shown.platforms):
        return 2
    return 0


def render(report: ScanReport, output_format: str) -> str:
    if output_format == "json":
        return render_json(report)
    if output_format == "sarif":
        return render_sarif(report)
    if output_format == "cyclonedx":
        timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return render_cyclonedx(report, timestamp=timestamp)
    return render_table(report)


def scan_image(
    image: str, index: AdvisoryIndex, *, platform: Platform | None = None, base_layers: int = 0,
    registry_credentials: BasicCredentials | None = None,
) -> ScanReport:
    """Analyse ``image`` with the analysis pipeline and assess every platform."""
    # Imported here: the pipeline pulls in the registry and layer code, which `db` does not need.
    from scanning.analysis import AnalysisStatus, analyze_image
    from scanning.inventory import InventoryStatus
    from scanning.registry import parse_reference

    # Only the reference's own syntax is a bad reference: errors from reading the image are
    # ScanErrors that say what is wrong with it.
    try:
        reference = parse_reference(image)
    except ValueError as error:
        raise BadRequest(f"bad image reference {image!r}: {error}") from error
    analysis = analyze_image(reference, platform=platform, credentials=registry_credentials)
    if not analysis.inventories:
        status = (
            AssessmentStatus.NOT_APPLICABLE
            if analysis.status is AnalysisStatus.NOT_APPLICABLE
            else AssessmentStatus.UNSUPPORTED
            if analysis.status is AnalysisStatus.UNSUPPORTED
            else AssessmentStatus.FAILED
        )
        return ScanReport(
            reference=analysis.reference,
            digest=analysis.digest,
            platforms=(
                PlatformReport(
                    platform=str(platform) if platform else "",
                    os=None,
                    status=status,
                    reason=analysis.reason,
                ),
            ),
        )
    matches = [
        None if inventory.status is InventoryStatus.FAILED else match_inventory(
            inventory.os, inventory.packages, index,
            base_layer_digests=frozenset(layer.digest for layer in inventory.layers[:base_layers]))
        for inventory in analysis.inventories
    ]
    verdict = assess_inventories(
        analysis.inventories, matches, rules=(), now=datetime.now(UTC),
        image=ImageRef(registry="", repository="", digest=analysis.digest))
    platforms = [
        PlatformReport(
            platform=result.platform, os=result.os,
            status=result.status or AssessmentStatus.FAILED, reason=result.reason,
            packages=report_packages(inventory.packages, package_ecosystems(inventory.os)),
            findings=result.findings, warnings=result.warnings)
        for inventory, result in zip(analysis.inventories, verdict.platforms, strict=True)
    ]
    return ScanReport(
        reference=analysis.reference, digest=analysis.digest, platforms=tuple(platforms)
    )
