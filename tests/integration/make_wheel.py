#!/usr/bin/python3
"""Writes a valid py3-none-any wheel of a tiny package, for offline pip tests.

    make_wheel.py OUTDIR [--name safeeval_testpkg] [--version 1.0] [--value 42]

The package is one module: `safeeval_testpkg/__init__.py` with `VALUE = 42`.
Prints the wheel's path. Pure standard library (zipfile), so it needs no pip,
setuptools or network. The zip entries get a fixed timestamp, so the same
arguments always give the same bytes.
"""
import argparse
import base64
import hashlib
import os
import re
import sys
import zipfile

FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (path, digest, len(data))


def make_wheel(outdir, name="safeeval_testpkg", version="1.0", value=42, init_source=None):
    """init_source: the package's __init__.py instead of `VALUE = value`."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", name) or not re.fullmatch(r"[0-9][0-9.]*", version):
        raise ValueError("bad name or version")
    dist_info = "%s-%s.dist-info" % (name, version)
    files = [
        ("%s/__init__.py" % name,
         (init_source if init_source is not None else "VALUE = %d\n" % value).encode()),
        ("%s/METADATA" % dist_info,
         ("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: safeeval test package\n"
          % (name, version)).encode()),
        ("%s/WHEEL" % dist_info,
         b"Wheel-Version: 1.0\nGenerator: safeeval-make_wheel\nRoot-Is-Purelib: true\n"
         b"Tag: py3-none-any\n"),
        ("%s/top_level.txt" % dist_info, ("%s\n" % name).encode()),
    ]
    record_path = "%s/RECORD" % dist_info
    record = "\n".join([record_line(p, d) for p, d in files] + [record_path + ",,", ""])
    files.append((record_path, record.encode()))

    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "%s-%s-py3-none-any.whl" % (name, version))
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for p, d in files:
            info = zipfile.ZipInfo(p, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, d)
    os.replace(tmp, path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--name", default="safeeval_testpkg")
    ap.add_argument("--version", default="1.0")
    ap.add_argument("--value", type=int, default=42)
    a = ap.parse_args()
    print(make_wheel(a.outdir, a.name, a.version, a.value))
    return 0


if __name__ == "__main__":
    sys.exit(main())
