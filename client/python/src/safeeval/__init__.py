"""safeeval: run untrusted Python in hardened sandboxes on a safeeval server.

    import safeeval
    sf = safeeval.SafeEval(version="3.11", modules=["numpy"])
    print(sf.eval(code='print("Hello World")').stdout)
    sf.close()

SafeEval creates a sandbox; eval / execute_file return a
subprocess.CompletedProcess-compatible Result; stream / stream_file yield
the output as it is written; server_info() says what a server offers,
list_sandboxes() what runs on it.
Every failure of the service is a SafeEvalError subclass carrying the gRPC
code and the server's message.
"""
from ._client import DEFAULT_TARGET, RunStream, SafeEval, list_sandboxes, server_info
from ._errors import (Aborted, Cancelled, DeadlineExceeded, FailedPrecondition, Internal,
                      InvalidArgument, PermissionDenied, ResourceExhausted, SafeEvalError,
                      SandboxNotFound, Unauthenticated, Unavailable, Unimplemented,
                      VersionNotAvailable)
from ._types import Chunk, Limits, PythonVersion, Reason, Result, SandboxInfo, ServerInfo

__version__ = "0.3.0"

__all__ = [
    "SafeEval", "server_info", "list_sandboxes", "RunStream", "DEFAULT_TARGET",
    "Result", "Reason", "Limits", "Chunk", "SandboxInfo", "ServerInfo", "PythonVersion",
    "SafeEvalError", "InvalidArgument", "SandboxNotFound", "ResourceExhausted",
    "FailedPrecondition", "VersionNotAvailable", "Unavailable", "DeadlineExceeded", "Aborted",
    "PermissionDenied", "Unauthenticated", "Unimplemented", "Cancelled", "Internal",
]
