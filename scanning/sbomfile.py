"""An existing SBOM as an image inventory, so it is matched like an image (``scan sbom:FILE``).

Packages come from their package URLs, as Grype reads an SBOM: CycloneDX 1.4-1.6 JSON
(``components[].purl``, nested components too; https://cyclonedx.org/docs/1.6/json/), SPDX 2.3
JSON (``packages[].externalRefs[]`` of type ``purl``; https://spdx.github.io/spdx-spec/v2.3/)
and Syft JSON (``artifacts[].purl``). The OS is the SBOM's own statement (a CycloneDX
``operating-system`` component, an SPDX package with purpose ``OPERATING-SYSTEM``, Syft's
``distro``), else the ``distro`` qualifier of the OS packages' purls (``alpine-3.10.4``).

A purl of a type acr-scan does not match (``pkg:github/…``, ``pkg:gem/…``) is skipped and
counted in a warning: the verdict never claims it was assessed. The image's own purl
(``pkg:oci/…``, which SPDX documents list as the described package) is not a package. An SBOM
has no layers, so findings carry no layer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from packageurl import PackageURL

from scanning.analysis import AnalysisStatus, ImageAnalysis
from scanning.analyzers import analyzer_set_version
from scanning.errors import BadRequest
from scanning.inventory import ImageInventory, InventoryStatus
from scanning.model import OSInfo, Package, PackageType, Platform

MAX_SBOM_BYTES = 256 << 20
_TYPES = {
    "apk": PackageType.APK, "deb": PackageType.DPKG, "rpm": PackageType.RPM,
    "pypi": PackageType.PYPI, "npm": PackageType.NPM, "golang": PackageType.GOLANG,
    "maven": PackageType.MAVEN, "nuget": PackageType.NUGET,
}

_IMAGE_PURLS = ("pkg:oci/", "pkg:docker/")


def read_sbom(path: Path) -> ImageAnalysis:
    """The one-platform analysis an SBOM file describes."""
    with path.open("rb") as file:
        data = file.read(MAX_SBOM_BYTES + 1)
    if len(data) > MAX_SBOM_BYTES:
        raise BadRequest(f"{path} is over the {MAX_SBOM_BYTES >> 20} MiB SBOM cap")
    try:
        document = json.loads(data)
    except ValueError as error:
        raise BadRequest(f"{path} is not a JSON SBOM: {error}") from error
    if not isinstance(document, dict):
        raise BadRequest(f"{path} is not a JSON SBOM (not an object)")
    kind, purls, os_info = _contents(document, path)
    packages: list[Package] = []
    skipped = 0
    for purl, source_name in dict.fromkeys(purls):
        if purl.startswith(_IMAGE_PURLS):  # the image the SBOM describes, not a package in it
            continue
        package = package_from_purl(purl, path=f"{kind}:{path.name}")
        if package is None:
            skipped += 1
        else:
            packages.append(package if package.source_name or not source_name
                            else dataclasses.replace(package, source_name=source_name))
    os_info = os_info or _os_from_qualifiers([purl for purl, _ in purls])
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    warnings = ((f"{skipped} purls of types acr-scan does not match were skipped",)
                if skipped else ())
    inventory = ImageInventory(
        reference=f"sbom:{path}", image_digest=digest, manifest_digest=digest,
        config_digest="", platform=Platform(os="unknown", architecture="unknown"),
        analyzer_set_version=analyzer_set_version(), status=InventoryStatus.COMPLETE,
        os=os_info, packages=tuple(packages), warnings=warnings)
    return ImageAnalysis(reference=f"sbom:{path}", digest=digest, media_type=kind,
                         status=AnalysisStatus.COMPLETE,
                         analyzer_set_version=inventory.analyzer_set_version,
                         inventories=(inventory,))


def _contents(document: Mapping[str, Any],
              path: Path) -> tuple[str, list[tuple[str, str]], OSInfo | None]:
    """(format, (purl, source package or "") pairs, stated OS) of a CycloneDX, SPDX or Syft
    document."""
    if document.get("bomFormat") == "CycloneDX":
        components = list(_cyclonedx_components(document.get("components")))
        os_info = next((OSInfo(id=str(c.get("name", "")).lower(),
                               version_id=str(c.get("version", "")))
                        for c in components if c.get("type") == "operating-system"), None)
        return "cyclonedx", [(c["purl"], _source_property(c)) for c in components
                             if isinstance(c.get("purl"), str)], os_info
    if str(document.get("spdxVersion", "")).startswith("SPDX-2"):
        purls: list[tuple[str, str]] = []
        os_info = None
        for package in _objects(document.get("packages")):
            if package.get("primaryPackagePurpose") == "OPERATING-SYSTEM":
                os_info = OSInfo(id=str(package.get("name", "")).lower(),
                                 version_id=str(package.get("versionInfo", "")))
            purls.extend((ref["referenceLocator"], "")
                         for ref in _objects(package.get("externalRefs"))
                         if ref.get("referenceType") == "purl"
                         and isinstance(ref.get("referenceLocator"), str))
        return "spdx", purls, os_info
    if isinstance(document.get("artifacts"), list):
        distro = document.get("distro")
        os_info = (OSInfo(id=str(distro.get("id", "")), version_id=str(distro.get("versionID", "")),
                          pretty_name=str(distro.get("prettyName", "")))
                   if isinstance(distro, dict) and distro.get("id") else None)
        return "syft", [(a["purl"], "") for a in _objects(document.get("artifacts"))
                        if isinstance(a.get("purl"), str)], os_info
    raise BadRequest(f"{path} is not a CycloneDX, SPDX 2 or Syft JSON document")


def _source_property(component: Mapping[str, Any]) -> str:
    """The source package ``acr-scan sbom --format cyclonedx`` records as a property."""
    return next((str(item.get("value", "")) for item in _objects(component.get("properties"))
                 if item.get("name") == "acr-scan:source-package"), "")


def _objects(value: object) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _cyclonedx_components(value: object) -> Iterator[dict[str, Any]]:
    stack = list(_objects(value))
    while stack:
        component = stack.pop(0)
        yield component
        stack.extend(_objects(component.get("components")))


def package_from_purl(purl: str, *, path: str) -> Package | None:
    """The package a purl names, or None for a type acr-scan does not match (or a bad purl)."""
    try:
        parsed = PackageURL.from_string(purl)
    except ValueError:
        return None
    package_type = _TYPES.get(parsed.type)
    if package_type is None or not parsed.version:
        return None
    qualifiers = parsed.qualifiers if isinstance(parsed.qualifiers, dict) else {}
    name = parsed.name
    if package_type is PackageType.MAVEN and parsed.namespace:
        name = f"{parsed.namespace}:{parsed.name}"
    elif package_type in (PackageType.NPM, PackageType.GOLANG) and parsed.namespace:
        name = f"{parsed.namespace}/{parsed.name}"
    version = parsed.version
    if package_type is PackageType.RPM and qualifiers.get("epoch", "0") not in ("", "0"):
        version = f"{qualifiers['epoch']}:{version}"
    # Syft's ``upstream`` qualifier is the source package: ``musl``, ``glibc@2.36-9``, or for
    # rpm the source rpm file ``openssl-3.0.7-1.cm2.src.rpm``.
    upstream = qualifiers.get("upstream", "")
    source_name, _, source_version = upstream.partition("@")
    if package_type is PackageType.RPM and upstream.endswith(".src.rpm"):
        source_name, source_version = _source_rpm(upstream)
    return Package(type=package_type, name=name, version=version, purl=purl, path=path,
                   source_name=source_name, source_version=source_version,
                   arch=qualifiers.get("arch", ""))


def _source_rpm(file_name: str) -> tuple[str, str]:
    """``openssl-3.0.7-1.cm2.src.rpm`` -> (``openssl``, ``3.0.7-1.cm2``)."""
    stem = file_name.removesuffix(".src.rpm")
    name_version, _, release = stem.rpartition("-")
    name, _, version = name_version.rpartition("-")
    return (name, f"{version}-{release}") if name and version else ("", "")


def _os_from_qualifiers(purls: list[str]) -> OSInfo | None:
    """The OS the ``distro`` qualifier of OS package purls names (``alpine-3.10.4``)."""
    for purl in purls:
        if not purl.startswith(("pkg:apk/", "pkg:deb/", "pkg:rpm/")):
            continue
        try:
            qualifiers = PackageURL.from_string(purl).qualifiers
        except ValueError:
            continue
        distro = qualifiers.get("distro", "") if isinstance(qualifiers, dict) else ""
        if distro:
            os_id, _, version = distro.rpartition("-")
            if not os_id or not version[:1].isdigit():  # "wolfi": an id without version
                return OSInfo(id=distro)
            return OSInfo(id=os_id, version_id=version)
    return None
