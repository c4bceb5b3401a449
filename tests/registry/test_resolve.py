"""Resolving references to platform images: indexes, attestations, artifacts, caps, digests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from scanning.errors import ManifestError, NotFound
from scanning.model import Platform
from scanning.ocibuild import build_oci_layout
from scanning.registry import (
    OciLayoutSource,
    ResolveStatus,
    SkippedManifest,
    clean_instruction,
    parse_reference,
    resolve_image,
)

AMD64 = Platform(os="linux", architecture="amd64")
ARM64 = Platform(os="linux", architecture="arm64", variant="v8")


def two_platforms(directory: Path, attestation: bool = False) -> str:
    return build_oci_layout(directory, [
        (AMD64, [{"etc/os-release": b"ID=alpine\n"}, {"app/x": b"1"}]),
        (ARM64, [{"etc/os-release": b"ID=alpine\n"}]),
    ], tag="multi", attestation=attestation)


def resolve(directory: Path, ref: str = "", platform: Platform | None = None):  # type: ignore[no-untyped-def]
    reference = parse_reference(f"oci:{directory}" + (f":{ref}" if ref else ""))
    return resolve_image(OciLayoutSource(directory), reference, platform=platform)


def test_index_resolves_to_every_platform_and_reports_the_attestation(tmp_path: Path) -> None:
    digest = two_platforms(tmp_path, attestation=True)
    resolved = resolve(tmp_path, "multi")
    assert (resolved.status, resolved.digest,
            [(str(p.platform), len(p.layers), p.layers[1].instruction if len(p.layers) > 1
              else p.layers[0].instruction) for p in resolved.platforms]) == (
        ResolveStatus.IMAGE, digest,
        [("linux/amd64", 2, "COPY layer2 /"), ("linux/arm64/v8", 1, "COPY layer1 /")])
    (skipped,) = resolved.skipped
    assert (skipped.platform, skipped.reason) == ("unknown/unknown", "attestation manifest")


def test_platform_filter_keeps_one_platform(tmp_path: Path) -> None:
    two_platforms(tmp_path)
    resolved = resolve(tmp_path, platform=Platform(os="linux", architecture="arm64"))
    assert [str(p.platform) for p in resolved.platforms] == ["linux/arm64/v8"]
    assert [s.reason for s in resolved.skipped] == ["platform not requested"]


def test_missing_platform_is_not_found(tmp_path: Path) -> None:
    two_platforms(tmp_path)
    with pytest.raises(NotFound, match="has no linux/s390x image"):
        resolve(tmp_path, platform=Platform(os="linux", architecture="s390x"))


def write_blob(directory: Path, document: object) -> tuple[str, int]:
    data = json.dumps(document).encode()
    digest = hashlib.sha256(data).hexdigest()
    (directory / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (directory / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def layout_pointing_at(directory: Path, document: object, media_type: str) -> str:
    digest, size = write_blob(directory, document)
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": media_type, "digest": digest, "size": size}]}))
    return digest


def test_helm_chart_is_not_applicable(tmp_path: Path) -> None:
    config, size = write_blob(tmp_path, {"name": "chart"})
    layout_pointing_at(tmp_path, {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": config,
                   "size": size},
        "layers": []}, "application/vnd.oci.image.manifest.v1+json")
    resolved = resolve(tmp_path)
    assert (resolved.status, resolved.reason) == (
        ResolveStatus.NOT_APPLICABLE,
        "artifact with config media type application/vnd.cncf.helm.config.v1+json")


def test_cosign_signature_is_not_applicable(tmp_path: Path) -> None:
    config, size = write_blob(tmp_path, {})
    layout_pointing_at(tmp_path, {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config,
                   "size": size},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "digest": config, "size": size}]},
        "application/vnd.oci.image.manifest.v1+json")
    resolved = resolve(tmp_path)
    assert (resolved.status, resolved.reason) == (
        ResolveStatus.NOT_APPLICABLE,
        "artifact with layer media type application/vnd.dev.cosign.simplesigning.v1+json")


def test_sbom_artifact_type_is_not_applicable(tmp_path: Path) -> None:
    config, size = write_blob(tmp_path, {})
    layout_pointing_at(tmp_path, {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config,
                   "size": size}, "layers": []}, "application/vnd.oci.image.manifest.v1+json")
    assert resolve(tmp_path).reason == "artifact of type application/spdx+json"


def test_schema1_manifest_is_unsupported(tmp_path: Path) -> None:
    layout_pointing_at(tmp_path, {"schemaVersion": 1, "name": "x", "fsLayers": []},
                       "application/vnd.docker.distribution.manifest.v1+prettyjws")
    assert resolve(tmp_path).status is ResolveStatus.UNSUPPORTED


def test_index_of_only_artifacts_is_not_applicable(tmp_path: Path) -> None:
    config, size = write_blob(tmp_path, {})
    child, child_size = write_blob(tmp_path, {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": config,
                   "size": size}, "layers": []})
    layout_pointing_at(tmp_path, {"schemaVersion": 2, "mediaType":
                                  "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": child,
         "size": child_size}]}, "application/vnd.oci.image.index.v1+json")
    resolved = resolve(tmp_path)
    assert (resolved.status, resolved.skipped) == (ResolveStatus.NOT_APPLICABLE, (
        SkippedManifest(digest=child, platform="(none)", reason="artifact with config media "
                        "type application/vnd.cncf.helm.config.v1+json"),))


def test_tampered_blob_fails_its_digest_check(tmp_path: Path) -> None:
    digest = layout_pointing_at(tmp_path, {"schemaVersion": 1}, "application/json")
    (tmp_path / "blobs/sha256" / digest.split(":")[1]).write_text('{"schemaVersion": 2}')
    with pytest.raises(ManifestError, match="fails its digest check"):
        resolve(tmp_path)


def test_manifest_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    layout_pointing_at(tmp_path, {"schemaVersion": 2, "pad": "x" * (4 * 1024 * 1024)},
                       "application/vnd.oci.image.manifest.v1+json")
    with pytest.raises(ManifestError, match="cap"):
        resolve(tmp_path)


def test_deeply_nested_json_is_refused(tmp_path: Path) -> None:
    nested: object = {}
    for _ in range(100):
        nested = {"a": nested}
    layout_pointing_at(tmp_path, {"schemaVersion": 2, "x": nested},
                       "application/vnd.oci.image.manifest.v1+json")
    with pytest.raises(ManifestError, match="nests JSON deeper than 64 levels"):
        resolve(tmp_path)



def image_with_config(directory: Path, config: dict[str, object]) -> str:
    config_digest, size = write_blob(directory, config)
    layout_pointing_at(directory, {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": size},
        "layers": []}, "application/vnd.oci.image.manifest.v1+json")
    return config_digest


def test_config_with_a_non_string_os_is_a_manifest_error(tmp_path: Path) -> None:
    config_digest = image_with_config(
        tmp_path, {"os": 5, "architecture": ["x"], "variant": {"a": 1}})
    with pytest.raises(ManifestError) as raised:
        resolve(tmp_path)
    assert (str(raised.value), raised.value.retryable) == (
        f"config {config_digest}: os must be a string, not a number", False)


def test_config_with_a_null_architecture_is_a_manifest_error(tmp_path: Path) -> None:
    config_digest = image_with_config(tmp_path, {"os": "linux", "architecture": None})
    with pytest.raises(ManifestError, match=f"^config {config_digest}: architecture must be "
                                            "a string, not null$"):
        resolve(tmp_path)


def test_index_entry_with_a_non_string_architecture_is_a_manifest_error(tmp_path: Path) -> None:
    child = "sha256:" + "0" * 64
    layout_pointing_at(tmp_path, {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": child, "size": 1,
                       "platform": {"os": "linux", "architecture": 64}}]},
        "application/vnd.oci.image.index.v1+json")
    with pytest.raises(ManifestError, match=r"^index sha256:[0-9a-f]{64}: manifests\[0\]"
                                            r"\.platform\.architecture must be a string, "
                                            "not a number$"):
        resolve(tmp_path)


@pytest.mark.parametrize(("created_by", "expected"), [
    ("/bin/sh -c #(nop) ADD file:abc in / ", "ADD file:abc in /"),
    ("/bin/sh -c apk add curl", "RUN apk add curl"),
    ("|2 A=1 B=2 /bin/sh -c make", "RUN make"),
    ("RUN /bin/sh -c apt-get update # buildkit", "RUN /bin/sh -c apt-get update"),
    ("COPY dir /app # buildkit", "COPY dir /app"),
])
def test_history_entries_become_dockerfile_instructions(created_by: str, expected: str) -> None:
    assert clean_instruction(created_by) == expected


# --------------------------------------------------------------------- malformed documents

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "sha256:" + "1" * 64


def _image_manifest(directory: Path, config: object, **layer: object) -> dict[str, object]:
    config_digest, config_size = write_blob(directory, config)
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": LAYER, "size": 10, **layer}]}


def _index_of(directory: Path, **entry: object) -> str:
    """An index with one entry for a valid image manifest, ``entry`` merged into it."""
    child, size = write_blob(directory, _image_manifest(directory, {"os": "linux"}))
    return layout_pointing_at(directory, {"schemaVersion": 2, "mediaType": OCI_INDEX,
                                          "manifests": [{"mediaType": OCI_MANIFEST,
                                                         "digest": child, "size": size,
                                                         **entry}]}, OCI_INDEX)


def _manifest_error(directory: Path) -> str:
    with pytest.raises(ManifestError) as raised:
        resolve(directory)
    return str(raised.value)


def test_index_entry_with_annotations_as_a_list_is_a_manifest_error(tmp_path: Path) -> None:
    index = _index_of(tmp_path, annotations=["vnd.docker.reference.type"])
    assert _manifest_error(tmp_path) == (
        f"index {index}: manifests[0].annotations must be an object, not an array")


def test_index_entry_with_a_numeric_annotation_is_a_manifest_error(tmp_path: Path) -> None:
    index = _index_of(tmp_path, annotations={"a": 1})
    assert _manifest_error(tmp_path) == (
        f"index {index}: manifests[0].annotations['a'] must be a string, not a number")


def test_index_entry_with_a_numeric_platform_os_is_a_manifest_error(tmp_path: Path) -> None:
    index = _index_of(tmp_path, platform={"os": 7, "architecture": "amd64"})
    assert _manifest_error(tmp_path) == (
        f"index {index}: manifests[0].platform.os must be a string, not a number")


def test_index_entry_with_platform_as_a_string_is_a_manifest_error(tmp_path: Path) -> None:
    index = _index_of(tmp_path, platform="linux/amd64")
    assert _manifest_error(tmp_path) == (
        f"index {index}: manifests[0].platform must be an object, not a string")


def test_index_entry_with_a_path_as_its_digest_is_a_manifest_error(tmp_path: Path) -> None:
    index = _index_of(tmp_path, digest="../../../etc/passwd")
    assert _manifest_error(tmp_path) == (
        f"index {index}: manifests[0].digest is not a digest: '../../../etc/passwd'")


def test_layer_size_as_a_string_is_a_manifest_error(tmp_path: Path) -> None:
    manifest = layout_pointing_at(tmp_path, _image_manifest(tmp_path, {}, size="10"),
                                  OCI_MANIFEST)
    assert _manifest_error(tmp_path) == (
        f"manifest {manifest}: layers[0].size must be an integer, not a string")


def test_layer_size_as_a_boolean_is_a_manifest_error(tmp_path: Path) -> None:
    manifest = layout_pointing_at(tmp_path, _image_manifest(tmp_path, {}, size=True),
                                  OCI_MANIFEST)
    assert _manifest_error(tmp_path) == (
        f"manifest {manifest}: layers[0].size must be an integer, not a boolean")


def test_negative_layer_size_is_a_manifest_error(tmp_path: Path) -> None:
    manifest = layout_pointing_at(tmp_path, _image_manifest(tmp_path, {}, size=-1),
                                  OCI_MANIFEST)
    assert _manifest_error(tmp_path) == f"manifest {manifest}: layers[0].size is negative (-1)"


def test_layer_media_type_as_a_number_is_a_manifest_error(tmp_path: Path) -> None:
    manifest = layout_pointing_at(tmp_path, _image_manifest(tmp_path, {}, mediaType=3),
                                  OCI_MANIFEST)
    assert _manifest_error(tmp_path) == (
        f"manifest {manifest}: layers[0].mediaType must be a string, not a number")


def test_top_level_media_type_as_an_object_is_a_manifest_error(tmp_path: Path) -> None:
    manifest = layout_pointing_at(tmp_path, {**_image_manifest(tmp_path, {}), "mediaType": {}},
                                  OCI_MANIFEST)
    assert _manifest_error(tmp_path) == (
        f"manifest {manifest}: mediaType must be a string, not an object")


def test_config_architecture_as_a_number_is_a_manifest_error(tmp_path: Path) -> None:
    layout_pointing_at(tmp_path, _image_manifest(tmp_path, {"architecture": 64}), OCI_MANIFEST)
    config, _ = write_blob(tmp_path, {"architecture": 64})
    assert _manifest_error(tmp_path) == (
        f"config {config}: architecture must be a string, not a number")


def test_layout_index_entry_with_annotations_as_a_list_is_a_manifest_error(
        tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": LAYER, "size": 1, "annotations": []}]}))
    assert _manifest_error(tmp_path) == (
        f"{tmp_path}/index.json: manifests[0].annotations must be an object, not an array")
