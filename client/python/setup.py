"""Build hook: the gRPC stubs are generated from the public proto while the
package is built, never committed.

The proto is found at $SAFEEVAL_PROTO_DIR, else ../../proto (this package in
the safeeval repository; pip builds in place). build_py runs
grpc_tools.protoc on safeeval/v1/sandbox.proto into the build tree, so the
wheel holds safeeval/v1/{__init__,sandbox_pb2,sandbox_pb2_grpc}.py and a copy
of the proto, and the installed package needs only grpcio and protobuf at run
time (no protoc, no writable cache).
"""
import importlib.util
import os
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_REL = os.path.join("safeeval", "v1", "sandbox.proto")


def proto_root():
    for root in (os.environ.get("SAFEEVAL_PROTO_DIR"),
                 os.path.join(HERE, "proto"),
                 os.path.join(HERE, "..", "..", "proto")):
        if root and os.path.isfile(os.path.join(root, PROTO_REL)):
            return os.path.abspath(root)
    raise SystemExit("safeeval: %s not found: build from the safeeval repository "
                     "(client/python) or set SAFEEVAL_PROTO_DIR" % PROTO_REL)


class BuildPyWithStubs(build_py):
    """build_py, then the stubs generated into the build tree."""

    def run(self):
        super().run()
        root = proto_root()
        out = os.path.abspath(self.build_lib)
        if importlib.util.find_spec("grpc_tools") is None:
            raise SystemExit("safeeval: grpc_tools is needed to build (Debian: "
                             "python3-grpc-tools; pip: grpcio-tools)")
        r = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + root,
                            "--python_out=" + out, "--grpc_python_out=" + out,
                            os.path.join(root, PROTO_REL)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        if r.returncode != 0:
            raise SystemExit("safeeval: protoc failed:\n" + r.stdout)
        v1 = os.path.join(out, "safeeval", "v1")
        with open(os.path.join(v1, "__init__.py"), "w") as f:
            f.write('"""Generated from proto/safeeval/v1/sandbox.proto at build time."""\n')
        shutil.copyfile(os.path.join(root, PROTO_REL), os.path.join(out, PROTO_REL))


setup(cmdclass={"build_py": BuildPyWithStubs})
