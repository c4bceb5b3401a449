"""One streaming pass over a layer: compression, tar entries, whiteouts, links, hostile input."""

from __future__ import annotations

import io
import tarfile

import pytest
import zstandard

from layers.helpers import ExecutableAnalyzer, ListAnalyzer, digest_of, gz, pypi, tar_bytes
from scanning.errors import ConfigError, LayerError
from scanning.layer_types import AnalyzedFile, LayerResult
from scanning.layers import LayerLimits, TarMember, analyze_tar, index_tar

PKGS = b"flask 2.0.1\nrequests 2.31.0\n"


def scan(blob: bytes, *, limits: LayerLimits | None = None, digest: str | None = None,
         analyzer: ListAnalyzer | None = None) -> LayerResult:
    return analyze_tar([blob[i:i + 1000] for i in range(0, len(blob), 1000)],
                      digest=digest or digest_of(blob), analyzers=(analyzer or ListAnalyzer(),),
                      analyzer_version="v1", limits=limits)


def test_gzip_layer_is_detected_by_magic_and_its_required_file_analyzed() -> None:
    plain = tar_bytes([("app", None, "dir"), ("app/pkgs.txt", PKGS, "file")])
    blob = gz(plain)
    result = scan(blob)
    assert result == LayerResult(
        digest=digest_of(blob), analyzer_set_version="v1", compression="gzip",
        compressed_size=len(blob), uncompressed_size=len(plain), entries=2,
        files=(AnalyzedFile(path="app/pkgs.txt", analyzer="list",
                            packages=(pypi("flask", "2.0.1", "app/pkgs.txt"),
                                      pypi("requests", "2.31.0", "app/pkgs.txt"))),),
    )


def test_zstd_layer_is_detected_by_magic() -> None:
    blob = zstandard.ZstdCompressor().compress(tar_bytes([("pkgs.txt", PKGS, "file")]))
    result = scan(blob)
    assert (result.compression, [f.path for f in result.files]) == ("zstd", ["pkgs.txt"])


def test_plain_tar_layer_is_read_uncompressed() -> None:
    result = scan(tar_bytes([("pkgs.txt", PKGS, "file")]))
    assert (result.compression, [f.path for f in result.files]) == ("none", ["pkgs.txt"])


def test_whiteouts_and_opaque_markers_are_recorded_for_the_merge() -> None:
    blob = tar_bytes([("etc/.wh.passwd", b"", "file"), ("opt/app/.wh..wh..opq", b"", "file"),
                      ("var/.wh..wh.plnk", b"", "file")])
    result = scan(blob)
    assert (result.whiteouts, result.opaque_dirs, result.files) == (
        ("etc/passwd",), ("opt/app",), ())


def test_absolute_and_dotdot_names_stay_inside_the_root() -> None:
    blob = tar_bytes([("/abs/pkgs.txt", PKGS, "file"), ("../../../up/pkgs.txt", PKGS, "file"),
                      ("./a/../b/pkgs.txt", PKGS, "file")])
    assert [f.path for f in scan(blob).files] == ["abs/pkgs.txt", "b/pkgs.txt", "up/pkgs.txt"]


def test_symlinks_are_recorded_not_followed() -> None:
    blob = tar_bytes([("lib", None, "symlink:usr/lib"),
                      ("evil/pkgs.txt", None, "symlink:../../../../etc/shadow")])
    result = scan(blob)
    assert (result.symlinks, result.files) == (
        (("evil/pkgs.txt", "../../../../etc/shadow"), ("lib", "usr/lib")), ())


def test_hard_link_to_an_analyzed_file_gets_its_packages_under_its_own_path() -> None:
    blob = tar_bytes([("a/pkgs.txt", b"six 1.16.0\n", "file"),
                      ("b/pkgs.txt", None, "hardlink:a/pkgs.txt")])
    result = scan(blob)
    assert (result.hardlinks, result.files) == (
        (("b/pkgs.txt", "a/pkgs.txt"),),
        (AnalyzedFile(path="a/pkgs.txt", analyzer="list",
                      packages=(pypi("six", "1.16.0", "a/pkgs.txt"),)),
         AnalyzedFile(path="b/pkgs.txt", analyzer="list",
                      packages=(pypi("six", "1.16.0", "b/pkgs.txt"),))),
    )


def test_later_entry_in_the_same_layer_replaces_the_earlier_one() -> None:
    blob = tar_bytes([("pkgs.txt", b"six 1.0\n", "file"), ("pkgs.txt", b"six 2.0\n", "file")])
    assert scan(blob).files == (
        AnalyzedFile(path="pkgs.txt", analyzer="list", packages=(pypi("six", "2.0", "pkgs.txt"),)),
    )


def test_long_names_from_pax_headers_are_used() -> None:
    name = "/".join(["d" * 60] * 4) + "/pkgs.txt"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(PKGS)
        tar.addfile(info, io.BytesIO(PKGS))
    assert [f.path for f in scan(buffer.getvalue()).files] == [name]


def test_file_over_the_analyzer_cap_is_skipped_with_a_warning() -> None:
    blob = tar_bytes([("pkgs.txt", b"x" * 2000, "file")])
    result = scan(blob)
    assert (result.files, result.warnings) == (
        (), ("pkgs.txt: 2000 bytes is over list's cap of 1024; not analyzed",))


def test_analyzer_error_is_recorded_on_the_file() -> None:
    result = scan(tar_bytes([("pkgs.txt", b"boom\n", "file")]))
    assert result.files == (AnalyzedFile(path="pkgs.txt", analyzer="list",
                                         error="pkgs.txt: boom"),)


def test_warnings_past_the_layer_limit_are_counted_not_kept() -> None:
    blob = tar_bytes([(f"d{i}/pkgs.txt", None, "hardlink:missing/pkgs.txt") for i in range(130)])
    warnings = scan(blob).warnings
    assert (len(warnings), warnings[0], warnings[-1]) == (
        101, "hard link d0/pkgs.txt -> missing/pkgs.txt: target not read by list",
        "... and 30 more not listed")


def test_entry_with_a_path_over_path_max_is_not_read_and_the_result_says_so() -> None:
    long_name = "d/" * 2048 + "pkgs.txt"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in (long_name, "pkgs.txt"):
            info = tarfile.TarInfo(name)
            info.size = len(PKGS)
            tar.addfile(info, io.BytesIO(PKGS))
    result = scan(buffer.getvalue())
    assert ([f.path for f in result.files], result.errors) == (
        ["pkgs.txt"], ("1 entries with a path over 4096 bytes (PATH_MAX) were not read",))


def test_symlink_target_over_path_max_is_kept_only_up_to_one_byte_past_it() -> None:
    blob = tar_bytes([("lib", None, "symlink:" + "t" * 10_000)])
    assert scan(blob).symlinks == (("lib", "t" * 4097),)


def test_digest_mismatch_names_the_layer() -> None:
    blob = gz(tar_bytes([("pkgs.txt", PKGS, "file")]))
    wrong = "sha256:" + "0" * 64
    with pytest.raises(LayerError, match=f"layer {wrong} digest mismatch"):
        scan(blob, digest=wrong)


def test_truncated_gzip_stream_is_a_layer_error() -> None:
    blob = gz(tar_bytes([("pkgs.txt", PKGS, "file")]))[:-30]
    with pytest.raises(LayerError, match="cannot be read"):
        scan(blob)


def test_truncated_plain_tar_is_a_layer_error() -> None:
    blob = tar_bytes([("pkgs.txt", PKGS * 100, "file")])[:1200]
    with pytest.raises(LayerError, match="truncated"):
        scan(blob)


def test_data_that_is_not_a_tar_is_a_layer_error() -> None:
    with pytest.raises(LayerError, match="checksum"):
        scan(b"this is not a tar archive" * 40)


def test_decompression_bomb_is_stopped_at_the_cap() -> None:
    blob = gz(tar_bytes([("zeros", bytes(5_000_000), "file")]))
    with pytest.raises(LayerError, match="decompression bomb cap"):
        scan(blob, limits=LayerLimits(max_decompressed_bytes=1_000_000))


def test_entries_past_the_cap_are_not_read_and_the_result_says_so() -> None:
    blob = gz(tar_bytes([(f"d{i}/pkgs.txt", f"p{i} 1.0\n".encode(), "file")
                         for i in range(20)]))
    result = scan(blob, limits=LayerLimits(max_entries=10))
    assert (result.entries, [f.path for f in result.files], result.errors,
            result.compressed_size) == (
        10, sorted(f"d{i}/pkgs.txt" for i in range(10)),
        ("more than 10 entries (MAX_LAYER_ENTRIES); entries past the cap were not read",),
        len(blob))


def test_entries_past_the_kept_path_bytes_cap_are_not_read_and_the_result_says_so() -> None:
    blob = tar_bytes([(f"l{i}", None, "symlink:" + "t" * 100) for i in range(10)])
    result = scan(blob, limits=LayerLimits(max_kept_path_bytes=300))
    assert (result.entries, [path for path, _ in result.symlinks], result.errors) == (
        3, ["l0", "l1", "l2"],
        ("more than 300 bytes of paths and link targets to keep; entries past the cap were "
         "not read",))


def test_capped_layer_is_still_checked_against_its_digest() -> None:
    blob = gz(tar_bytes([(f"f{i}", b"", "file") for i in range(20)]))
    wrong = "sha256:" + "0" * 64
    with pytest.raises(LayerError, match=f"layer {wrong} digest mismatch"):
        scan(blob, digest=wrong, limits=LayerLimits(max_entries=10))


def test_layer_with_exactly_the_cap_of_entries_is_complete() -> None:
    result = scan(tar_bytes([(f"f{i}", b"", "file") for i in range(10)]),
                  limits=LayerLimits(max_entries=10))
    assert (result.entries, result.errors) == (10, ())


def test_entry_cap_comes_from_the_max_layer_entries_setting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_LAYER_ENTRIES", "7")
    assert LayerLimits.from_settings() == LayerLimits(max_entries=7)


def test_non_positive_entry_cap_setting_is_a_config_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_LAYER_ENTRIES", "0")
    with pytest.raises(ConfigError) as raised:
        LayerLimits.from_settings()
    assert str(raised.value) == "setting MAX_LAYER_ENTRIES must be positive, got 0"


def test_many_executables_replacing_each_other_keep_only_the_last_output() -> None:
    # Each regular file replaces any earlier entry at its path: that lookup is by path, so a
    # layer of 100,000 executables costs 100,000 lookups (bench/bench_hostile.py times it).
    names = [f"bin/tool{i % 5000}" for i in range(10_000)]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.mode = 0o755
            info.size = 4
            tar.addfile(info, io.BytesIO(b"\x7fELF"))
    result = scan(buffer.getvalue(), analyzer=ExecutableAnalyzer())
    assert (result.entries, result.files) == (
        10_000, tuple(AnalyzedFile(path=name, analyzer="exe") for name in sorted(set(names))))


def test_oversized_pax_header_is_refused_before_it_is_read() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("f")
        info.pax_headers = {"comment": "x" * 5000}
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(LayerError,
                       match=r"extended tar header of \d+ bytes exceeds the cap of 1000"):
        scan(buffer.getvalue(), limits=LayerLimits(max_header_bytes=1000))


def test_empty_blob_is_an_empty_layer() -> None:
    assert scan(b"").entries == 0


def test_tar_index_lists_regular_files_by_offset_and_leaves_out_overlong_names() -> None:
    blob = tar_bytes([("./manifest.json", b"[]", "file"), ("abc", None, "dir"),
                      ("abc/layer.tar", None, "symlink:../blobs/x"),
                      ("blobs/x", b"x" * 600, "file"), ("d/" * 2048 + "long", b"1", "file")])
    members = index_tar(io.BytesIO(blob), where="image.tar", max_members=10)
    assert members == {"manifest.json": TarMember(offset=512, size=2),
                       "blobs/x": TarMember(offset=blob.index(b"x" * 600), size=600)}


def test_tar_index_over_the_member_cap_is_a_layer_error() -> None:
    blob = tar_bytes([(f"f{i}", b"", "file") for i in range(4)])
    with pytest.raises(LayerError) as raised:
        index_tar(io.BytesIO(blob), where="image.tar", max_members=3)
    assert str(raised.value) == "image.tar: more than 3 tar entries"
