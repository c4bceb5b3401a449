"""A package's JSON form (``model.package_to_json`` / ``package_from_json``), as inventories
store it: every field of ``Package`` survives the round trip."""

from __future__ import annotations

import dataclasses

import pytest

from scanning.model import Package, PackageType, package_from_json, package_to_json


def _every_field_set() -> Package:
    """A package with a value in every field, found from the dataclass itself, so a field
    added to Package and forgotten by package_from_json fails here."""
    values: dict[str, object] = {}
    for field in dataclasses.fields(Package):
        if field.name == "type":
            values[field.name] = PackageType.APK
        elif field.name == "licenses":
            values[field.name] = ("MIT", "Apache-2.0")
        else:
            values[field.name] = f"{field.name}-value"
    return Package(**values)  # type: ignore[arg-type]


def test_every_field_round_trips() -> None:
    package = _every_field_set()
    data = package_to_json(package)
    assert sorted(data) == sorted(field.name for field in dataclasses.fields(Package))
    assert package_from_json(data) == package
    assert hash(package_from_json(data)) == hash(package)


def test_optional_fields_default_when_absent() -> None:
    data = {"type": "pypi", "name": "requests", "version": "2.31.0",
            "purl": "pkg:pypi/requests@2.31.0", "path": "app/requirements.txt"}
    assert package_from_json(data) == Package(
        type=PackageType.PYPI, name="requests", version="2.31.0",
        purl="pkg:pypi/requests@2.31.0", path="app/requirements.txt")
    assert package_from_json(data).source == "requests"


def test_a_package_read_back_is_still_frozen() -> None:
    package = package_from_json({"type": "npm", "name": "a", "version": "1", "purl": "",
                                 "path": ""})
    with pytest.raises(dataclasses.FrozenInstanceError):
        package.name = "b"  # type: ignore[misc]


@pytest.mark.parametrize(("data", "error"), [
    ({"name": "a", "version": "1", "purl": "", "path": ""}, KeyError),
    ({"type": "pypi", "version": "1", "purl": "", "path": ""}, KeyError),
    ({"type": "no-such-type", "name": "a", "version": "1", "purl": "", "path": ""}, ValueError),
    ({"type": ["pypi"], "name": "a", "version": "1", "purl": "", "path": ""}, ValueError),
])
def test_malformed_packages_raise_what_inventory_reading_catches(
    data: dict[str, object], error: type[Exception],
) -> None:
    with pytest.raises(error):
        package_from_json(data)
