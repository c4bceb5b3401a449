"""Parsing image references."""

from __future__ import annotations

import pytest

from scanning.registry import ImageReference, ReferenceKind, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "expected"), [
    ("myacr.azurecr.io/team/app/api:1.2", ImageReference(
        kind=ReferenceKind.REGISTRY, registry="myacr.azurecr.io", repository="team/app/api",
        tag="1.2")),
    (f"127.0.0.1:5000/app@{DIGEST}", ImageReference(
        kind=ReferenceKind.REGISTRY, registry="127.0.0.1:5000", repository="app", digest=DIGEST)),
    (f"localhost/app:v1@{DIGEST}", ImageReference(
        kind=ReferenceKind.REGISTRY, registry="localhost", repository="app", tag="v1",
        digest=DIGEST)),
    ("ghcr.io/org/img", ImageReference(
        kind=ReferenceKind.REGISTRY, registry="ghcr.io", repository="org/img", tag="latest")),
    ("alpine:3.19", ImageReference(
        kind=ReferenceKind.REGISTRY, registry="docker.io", repository="library/alpine",
        tag="3.19")),
    ("oci:/tmp/layout:v2", ImageReference(kind=ReferenceKind.OCI_LAYOUT, path="/tmp/layout",
                                          tag="v2")),
    ("oci:/tmp/layout", ImageReference(kind=ReferenceKind.OCI_LAYOUT, path="/tmp/layout")),
    ("docker-archive:/tmp/a.tar.gz", ImageReference(kind=ReferenceKind.DOCKER_ARCHIVE,
                                                    path="/tmp/a.tar.gz")),
    ("docker-archive:/tmp/a.tar:alpine:3.10", ImageReference(
        kind=ReferenceKind.DOCKER_ARCHIVE, path="/tmp/a.tar", tag="alpine:3.10")),
    ("docker-archive:/tmp/a.tar@1", ImageReference(
        kind=ReferenceKind.DOCKER_ARCHIVE, path="/tmp/a.tar", archive_index=1)),
    ("docker-archive:/tmp/a.tar:@0", ImageReference(
        kind=ReferenceKind.DOCKER_ARCHIVE, path="/tmp/a.tar", archive_index=0)),
])
def test_reference_forms_parse(text: str, expected: ImageReference) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize("text", ["reg.io/UPPER/case:1", "reg.io/app@sha256:123",
                                  "reg.io/app:bad tag", "oci:", "docker-archive:",
                                  "docker-archive:/tmp/a.tar:@x"])
def test_malformed_references_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_reference(text)


def test_reference_prints_back_in_its_own_syntax() -> None:
    assert str(parse_reference(f"reg.io/a/b:1@{DIGEST}")) == f"reg.io/a/b:1@{DIGEST}"


def test_archive_image_number_prints_back() -> None:
    assert str(parse_reference("docker-archive:/tmp/a.tar@1")) == "docker-archive:/tmp/a.tar@1"
