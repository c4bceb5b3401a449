"""Picking one image of a multi-image ``docker save`` archive (go-containerregistry's real
``test_bundle.tar``: ``test_image_2`` then ``test_image_1``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanning.errors import ManifestError, NotFound
from scanning.registry import open_source, parse_reference, resolve_image

BUNDLE = "images/go-containerregistry/test_bundle.tar"


def _config_digest(testdata: Path, suffix: str) -> str:
    reference = parse_reference(f"docker-archive:{testdata / BUNDLE}{suffix}")
    source = open_source(reference)
    try:
        return resolve_image(source, reference).platforms[0].config_digest
    finally:
        source.close()


def test_image_number_picks_that_entry(testdata: Path) -> None:
    assert _config_digest(testdata, "@1") == (
        "sha256:6e0b05049ed9c17d02e1a55e80d6599dbfcce7f4f4b022e3c673e685789c470e")


def test_repo_tag_picks_that_entry(testdata: Path) -> None:
    assert _config_digest(testdata, ":test_image_2") == (
        "sha256:930705ce23e3b6ed4c08746b6fe880089c864fbaf62482702ae3fdd66b8c7fe9")


def test_no_choice_in_a_multi_image_archive_lists_the_images(testdata: Path) -> None:
    with pytest.raises(NotFound) as raised:
        open_source(parse_reference(f"docker-archive:{testdata / BUNDLE}"))
    assert str(raised.value) == (
        f"{testdata / BUNDLE} holds 2 images; pick one with docker-archive:FILE@N or "
        "docker-archive:FILE:TAG: @0 (test_image_2), @1 (test_image_1)")


def test_unknown_tag_lists_the_images(testdata: Path) -> None:
    with pytest.raises(NotFound) as raised:
        open_source(parse_reference(f"docker-archive:{testdata / BUNDLE}:nope"))
    assert str(raised.value) == (
        f"{testdata / BUNDLE} has no image tagged 'nope'; pick one with docker-archive:FILE@N "
        "or docker-archive:FILE:TAG: @0 (test_image_2), @1 (test_image_1)")


def test_image_number_out_of_range_says_how_many(testdata: Path) -> None:
    with pytest.raises(NotFound) as raised:
        open_source(parse_reference(f"docker-archive:{testdata / BUNDLE}@2"))
    assert str(raised.value) == f"{testdata / BUNDLE} holds 2 images (@0 to @1), not @2"


def test_a_file_that_is_not_a_tar_is_one_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(ManifestError) as raised:
        open_source(parse_reference(f"docker-archive:{text}"))
    assert str(raised.value) == (
        f"{text} is not a docker archive (a tar file, plain or gzip-compressed)")
