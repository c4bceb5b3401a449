"""``python -m scanning sbom IMAGE``: the package inventory of an image, without matching.

Formats: ``json`` (acr-scan's own, the README documents it), ``cyclonedx`` (CycloneDX 1.5 JSON,
https://cyclonedx.org/docs/1.5/json/) and ``table``. On a terminal, progress for the layers
being read goes to stderr. Exit status: 0 when the image was analysed (also for
``unsupported``/``not_applicable`` results and ``partial`` inventories, which the output
reports), 1 when a layer could not be read (``failed``), 2 for any other error, with a
one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

from scanning import __version__
from scanning.analysis import AnalysisStatus, ImageAnalysis, LayerProgress, analyze_image
from scanning.commands import credentials
from scanning.commands.images import parse_image, reachability
from scanning.errors import ScanError
from scanning.layercache import LocalLayerCache
from scanning.model import Platform

FORMATS = ("json", "cyclonedx", "table")
MiB = 1 << 20


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sbom", help="list the packages in an image (every platform)",
        description="List the packages in an image: REGISTRY/REPO[:TAG|@DIGEST], oci:DIR[:REF], "
                    "docker-archive:FILE[:TAG|@N] or dir:PATH (an unpacked root filesystem).")
    parser.add_argument("image", help="image reference")
    parser.add_argument("--platform", default="all",
                        help="all (default) or OS/ARCH[/VARIANT], e.g. linux/arm64")
    parser.add_argument("--format", choices=FORMATS, default="json", dest="output_format")
    credentials.add_arguments(parser)
    parser.add_argument("--cache", type=Path, default=None,
                        help="directory for the per-layer result cache")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(handler=run)


class TerminalProgress:
    """One rewritten status line on stderr while layers are read."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.width = 0

    def __call__(self, event: LayerProgress) -> None:
        state = "cached" if event.cached else (
            "done" if event.done else f"{event.read_bytes / MiB:.1f}/{event.size / MiB:.1f} MiB")
        line = (f"[{event.platform}] layer {event.index}/{event.count} "
                f"{event.digest[:19]} {state}")
        self.stream.write("\r" + line.ljust(self.width))
        self.width = len(line)
        self.stream.flush()

    def finish(self) -> None:
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    try:
        platform = None if args.platform == "all" else Platform.parse(args.platform)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    reference = parse_image(args.image)
    progress = None if args.quiet or not sys.stderr.isatty() else TerminalProgress(sys.stderr)
    cache = LocalLayerCache(args.cache) if args.cache else None
    try:
        analysis = analyze_image(reference, platform=platform, cache=cache, progress=progress,
                                 credentials=credentials.from_args(args))
    except ScanError as error:
        raise reachability(error, reference) from error
    finally:
        if progress is not None:
            progress.finish()
    if args.output_format == "cyclonedx":
        sys.stdout.write(json.dumps(sbom_to_cyclonedx(analysis), indent=2) + "\n")
    elif args.output_format == "table":
        sys.stdout.write(to_table(analysis))
    else:
        sys.stdout.write(json.dumps(analysis.to_json(), indent=2) + "\n")
    if analysis.status is AnalysisStatus.FAILED:
        print(f"error: {analysis.reason}", file=sys.stderr)
        return 1
    return 0


def sbom_to_cyclonedx(analysis: ImageAnalysis) -> dict[str, Any]:
    """A CycloneDX 1.5 BOM: one ``operating-system`` and ``library`` components per platform."""
    components: list[dict[str, Any]] = []
    for inventory in analysis.inventories:
        platform = str(inventory.platform)
        if inventory.os is not None:
            components.append({
                "type": "operating-system",
                "bom-ref": f"os:{platform}",
                "name": inventory.os.id,
                "version": inventory.os.version_id,
                "description": inventory.os.pretty_name,
                "properties": [{"name": "acr-scan:platform", "value": platform}],
            })
        for package in inventory.packages:
            component: dict[str, Any] = {
                "type": "library",
                "bom-ref": f"{package.purl}#{platform}#{package.path}",
                "name": package.name,
                "version": package.version,
                "purl": package.purl,
                "properties": [
                    {"name": "acr-scan:platform", "value": platform},
                    {"name": "acr-scan:package-type", "value": package.type.value},
                    {"name": "acr-scan:path", "value": package.path},
                    {"name": "acr-scan:layer-digest", "value": package.layer_digest},
                    {"name": "acr-scan:layer-instruction", "value": package.layer_instruction},
                    *([{"name": "acr-scan:source-package", "value": package.source_name}]
                      if package.source_name else []),
                ],
            }
            if package.licenses:
                component["licenses"] = [{"license": {"name": name}}
                                         for name in package.licenses]
            components.append(component)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, analysis.digest)}",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "acr-scan",
                                      "version": __version__}]},
            "component": {"type": "container", "bom-ref": analysis.digest,
                          "name": analysis.reference, "version": analysis.digest},
            "properties": [{"name": "acr-scan:status", "value": analysis.status.value}],
        },
        "components": components,
    }


def to_table(analysis: ImageAnalysis) -> str:
    lines = [f"{analysis.reference}  {analysis.digest}  {analysis.status.value}"]
    if analysis.reason:
        lines.append(f"  {analysis.reason}")
    for skipped in analysis.skipped:
        lines.append(f"  skipped {skipped.platform} {skipped.digest[:19]}: {skipped.reason}")
    for inventory in analysis.inventories:
        os_text = (f"{inventory.os.id} {inventory.os.version_id}".strip()
                   if inventory.os else "unknown OS")
        lines.append("")
        lines.append(f"{inventory.platform}  {os_text}  {len(inventory.packages)} packages  "
                     f"{inventory.status.value}")
        layer_numbers = {layer.digest: str(number)
                         for number, layer in enumerate(inventory.layers, start=1)}
        rows = [("TYPE", "NAME", "VERSION", "LAYER", "PATH")] + [
            (package.type.value, package.name, package.version,
             layer_numbers.get(package.layer_digest, "?"), package.path)
            for package in inventory.packages
        ]
        widths = [max(len(row[column]) for row in rows) for column in range(4)]
        for row in rows:
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                          strict=False))
                         + "  " + row[4])
        for error in inventory.errors:
            lines.append(f"  error: {error}")
        for warning in inventory.warnings:
            lines.append(f"  warning: {warning}")
    return "\n".join(lines) + "\n"
