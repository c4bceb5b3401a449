"""Package URLs (https://github.com/package-url/purl-spec) for the packages analyzers find.

An analyzer sees one file and does not know the distribution, so OS packages leave their
analyzer without a namespace: ``pkg:deb/libc6@2.27-3ubuntu1?arch=amd64``. Once the image's OS
is known (``os_release.best_os``), the merge step calls ``qualify_purl`` to add the namespace
and the ``distro`` qualifier: ``pkg:deb/ubuntu/libc6@2.27-3ubuntu1?arch=amd64&distro=ubuntu-18.04``.
Language packages (PyPI, npm, ...) are complete as the analyzer writes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from packageurl import PackageURL

from scanning.model import OSInfo, Package, PackageType

# purl-spec names the vendor of an OS package by a short namespace. For most distributions it is
# the os-release ID; these are the exceptions where purl-spec and the reference tools use
# another word (purl-spec's rpm examples use "redhat"; SUSE's ids all name one vendor).
_NAMESPACE_BY_OS_ID = {
    "rhel": "redhat",
    "sles": "suse",
    "sles_sap": "suse",
    "sle-micro": "suse",
    "opensuse-leap": "opensuse",
    "opensuse-tumbleweed": "opensuse",
}


def make_purl(
    package_type: PackageType,
    name: str,
    version: str,
    *,
    namespace: str = "",
    qualifiers: Mapping[str, str] | None = None,
) -> str:
    """The canonical purl string; empty qualifier values are left out."""
    kept = {key: value for key, value in (qualifiers or {}).items() if value}
    return PackageURL(
        type=package_type.value,
        namespace=namespace or None,
        name=name,
        version=version or None,
        qualifiers=kept or None,
    ).to_string()


def distro_qualifier(os_info: OSInfo) -> str:
    """``<id>-<version_id>`` (``debian-12``, ``alpine-3.11.5``), or the id alone."""
    return f"{os_info.id}-{os_info.version_id}" if os_info.version_id else os_info.id


def qualify_purl(package: Package, os_info: OSInfo | None) -> Package:
    """``package`` with its purl completed by the image's OS (namespace and ``distro``).

    Only OS packages (deb, apk, rpm) are changed, and only when the OS is known; a purl that
    already has a namespace is left as it is, so calling this twice is harmless.
    """
    if os_info is None or not package.type.is_os or not package.purl:
        return package
    parsed = PackageURL.from_string(package.purl)
    if parsed.namespace:
        return package
    qualifiers = dict(parsed.qualifiers) if isinstance(parsed.qualifiers, dict) else {}
    qualifiers["distro"] = distro_qualifier(os_info)
    purl = PackageURL(
        type=parsed.type,
        namespace=_NAMESPACE_BY_OS_ID.get(os_info.id, os_info.id),
        name=parsed.name,
        version=parsed.version,
        qualifiers=qualifiers,
        subpath=parsed.subpath,
    ).to_string()
    return dataclasses.replace(package, purl=purl)
