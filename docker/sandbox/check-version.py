"""Checks the venv interpreter against the requested version and records it.

Usage: check-version.py REQUESTED OUTFILE
REQUESTED "3.11" matches 3.11.x; "3.11.4" must match exactly; "" matches any.
"""
import platform
import sys


def main():
    want = sys.argv[1].strip() if len(sys.argv) > 1 else ""
    out = sys.argv[2] if len(sys.argv) > 2 else "/opt/safeeval/python-version"
    have = platform.python_version()
    if want:
        w = want.split(".")
        h = have.split(".")
        if h[: len(w)] != w:
            sys.stderr.write(
                "safeeval: python version mismatch: requested %s, image has %s\n" % (want, have)
            )
            sys.exit(1)
    with open(out, "w") as f:
        f.write(have + "\n")


main()
