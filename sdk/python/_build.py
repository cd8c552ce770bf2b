"""A PEP 517 build backend in the standard library alone, so that `pip install ./sdk/python`
needs nothing from a package index: the package is pure Python, one directory of modules."""

import base64
import hashlib
import io
import pathlib
import tarfile
import zipfile

NAME, DIST, VERSION = "portcullis-sdk", "portcullis_sdk", "0.1.0"
ROOT = pathlib.Path(__file__).resolve().parent
METADATA = f"""Metadata-Version: 2.1
Name: {NAME}
Version: {VERSION}
Summary: Client of the Portcullis decision API: decide, outcome, approval wait, RFC 9421 Ed25519 request signing.
License: Apache-2.0
Requires-Python: >=3.9
Requires-Dist: cryptography>=41
"""
WHEEL = f"""Wheel-Version: 1.0
Generator: {DIST}-build
Root-Is-Purelib: true
Tag: py3-none-any
"""


def _modules():
    return sorted(p for p in (ROOT / "portcullis").glob("*.py"))


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = f"{DIST}-{VERSION}-py3-none-any.whl"
    info = f"{DIST}-{VERSION}.dist-info"
    files = [(f"portcullis/{p.name}", p.read_bytes()) for p in _modules()]
    files += [(f"{info}/METADATA", METADATA.encode()), (f"{info}/WHEEL", WHEEL.encode())]
    record = "".join(f"{n},{_digest(d)},{len(d)}\n" for n, d in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(pathlib.Path(wheel_directory) / name, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in files + [(f"{info}/RECORD", record.encode())]:
            z.writestr(zipfile.ZipInfo(n, date_time=(1980, 1, 1, 0, 0, 0)), d)
    return name


def build_sdist(sdist_directory, config_settings=None):
    base = f"{DIST}-{VERSION}"
    name = base + ".tar.gz"
    with tarfile.open(pathlib.Path(sdist_directory) / name, "w:gz") as tar:
        for p in [ROOT / "pyproject.toml", ROOT / "_build.py"] + _modules():
            tar.add(p, arcname=f"{base}/{p.relative_to(ROOT)}")
        pkg = METADATA.encode()
        ti = tarfile.TarInfo(f"{base}/PKG-INFO")
        ti.size = len(pkg)
        tar.addfile(ti, io.BytesIO(pkg))
    return name
