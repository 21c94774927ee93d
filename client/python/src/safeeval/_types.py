"""The SDK's plain data types: limits, results, output chunks, sandbox and
server descriptions. Times are seconds (float), sizes bytes, as in Python's
own APIs; the wire's milliseconds and microseconds stay inside the SDK."""
import enum
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Union

from ._errors import InvalidArgument

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1


class Reason(str, enum.Enum):
    """Why a run ended. A str, so `r.reason == "wall_timeout"` works too."""

    UNSPECIFIED = "unspecified"
    EXITED = "exited"  # ended by itself; returncode is its exit status
    SIGNALED = "signaled"  # a signal not sent by a limit; returncode is -signal
    WALL_TIMEOUT = "wall_timeout"  # the wall-time limit (time_limit) passed
    CPU_TIMEOUT = "cpu_timeout"  # the CPU-time limit was used up
    MEMORY_LIMIT = "memory_limit"  # the memory limit was reached
    FILE_SIZE_LIMIT = "file_size_limit"  # a write went past the file-size limit


# ExitReason enum numbers of the proto, in order.
_REASONS = [Reason.UNSPECIFIED, Reason.EXITED, Reason.SIGNALED, Reason.WALL_TIMEOUT,
            Reason.CPU_TIMEOUT, Reason.MEMORY_LIMIT, Reason.FILE_SIZE_LIMIT]


def reason_from_pb(n: int) -> Reason:
    return _REASONS[n] if 0 <= n < len(_REASONS) else Reason.UNSPECIFIED


@dataclass
class Limits:
    """Limits of a run or a sandbox; 0 means "the default" in every field
    (the sandbox's own for a run, the server's for a sandbox). A run may
    lower its sandbox's limits, never raise them.

    Times in seconds (resolution 1 ms), sizes in bytes.
    """

    wall_time: float = 0
    cpu_time: float = 0
    memory: int = 0
    max_processes: int = 0
    max_output: int = 0  # bytes kept per stream (stdout, stderr)
    max_file: int = 0  # bytes any one written file may reach
    max_collect_files: int = 0  # files `collect` may bring back
    max_collect_bytes: int = 0  # bytes of all collected files together

    def to_pb(self, pb):
        return pb.Limits(
            wall_time_ms=seconds_to_ms(self.wall_time, "wall_time"),
            cpu_time_ms=seconds_to_ms(self.cpu_time, "cpu_time"),
            memory_bytes=_count(self.memory, "memory", UINT64_MAX),
            max_processes=_count(self.max_processes, "max_processes", UINT32_MAX),
            max_output_bytes=_count(self.max_output, "max_output", UINT64_MAX),
            max_file_bytes=_count(self.max_file, "max_file", UINT64_MAX),
            max_collect_files=_count(self.max_collect_files, "max_collect_files", UINT32_MAX),
            max_collect_bytes=_count(self.max_collect_bytes, "max_collect_bytes", UINT64_MAX))

    @classmethod
    def from_pb(cls, m) -> "Limits":
        return cls(wall_time=m.wall_time_ms / 1000, cpu_time=m.cpu_time_ms / 1000,
                   memory=m.memory_bytes, max_processes=m.max_processes,
                   max_output=m.max_output_bytes, max_file=m.max_file_bytes,
                   max_collect_files=m.max_collect_files,
                   max_collect_bytes=m.max_collect_bytes)


def seconds_to_ms(s: float, what: str) -> int:
    """Seconds to whole milliseconds (rounded up: a limit is never made
    shorter than asked); 0 stays 0 (= the default)."""
    if isinstance(s, bool) or not isinstance(s, (int, float)) or s != s or s < 0:
        raise InvalidArgument("%s must be a number of seconds >= 0, got %r" % (what, s))
    ms = int(-(-s * 1000 // 1))
    if ms > UINT32_MAX:
        raise InvalidArgument("%s: %r s is more than %d ms" % (what, s, UINT32_MAX))
    return ms


def _count(n: int, what: str, top: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n > top:
        raise InvalidArgument("%s must be an integer in [0, %d], got %r" % (what, top, n))
    return n


Output = Union[str, bytes]


class Result(subprocess.CompletedProcess):
    """A run's result: a subprocess.CompletedProcess (args, returncode, stdout,
    stderr, check_returncode()) with safeeval's extras.

    Attributes:
        args: ("python3", "-c", code, *args) for eval, ("python3", filename,
            *args) for execute_file.
        returncode: the exit status; -N when a signal N ended the run.
        stdout, stderr: str (decoded UTF-8, bad bytes replaced) by default,
            bytes when the call said text=False; at most the max_output limit.
        reason: a Reason; a limit that was hit is a reason, never an exception.
        signal: the signal that ended the run, 0 = none.
        stdout_truncated, stderr_truncated: output past max_output was dropped.
        stdout_bytes, stderr_bytes: bytes the run wrote in all.
        wall_time, cpu_time: seconds (float).
        max_rss: peak memory in bytes.
        files: {path: bytes} of the files `collect` brought back, in path order.
        files_truncated: some matched file was left out (count or bytes cap).
    """

    def __init__(self, args: Sequence[str], returncode: int, stdout: Output, stderr: Output,
                 *, reason: Reason, signal: int, stdout_truncated: bool,
                 stderr_truncated: bool, stdout_bytes: int, stderr_bytes: int,
                 wall_time: float, cpu_time: float, max_rss: int, files: Dict[str, bytes],
                 files_truncated: bool) -> None:
        super().__init__(list(args), returncode, stdout, stderr)
        self.reason = reason
        self.signal = signal
        self.stdout_truncated = stdout_truncated
        self.stderr_truncated = stderr_truncated
        self.stdout_bytes = stdout_bytes
        self.stderr_bytes = stderr_bytes
        self.wall_time = wall_time
        self.cpu_time = cpu_time
        self.max_rss = max_rss
        self.files = files
        self.files_truncated = files_truncated

    @property
    def truncated(self) -> bool:
        """Whether stdout or stderr was cut at the max_output limit."""
        return self.stdout_truncated or self.stderr_truncated

    def __repr__(self) -> str:
        return ("Result(returncode=%r, reason=%s, stdout=%r, stderr=%r, wall_time=%.3f)"
                % (self.returncode, self.reason.value, self.stdout, self.stderr,
                   self.wall_time))


@dataclass(frozen=True)
class Chunk:
    """A piece of a run's output as it was written (see SafeEval.stream).

    stream is "stdout" or "stderr"; data is str (text=True) or bytes.
    """

    stream: str
    data: Output


@dataclass
class SandboxInfo:
    """A sandbox as the server describes it (its limits are the effective
    ones: no field is 0)."""

    id: str
    python_version: str  # as the interpreter reports it: "3.11.2"
    modules: List[str]
    limits: Limits
    image: str
    created_at: float  # seconds since the Unix epoch
    last_used_at: float
    labels: Dict[str, str]
    idle_timeout: int  # seconds
    max_concurrent_runs: int
    workers: int
    preload: List[str]
    runner: str  # "fresh" or "zygote"
    owner: str

    @classmethod
    def from_pb(cls, pb, s) -> "SandboxInfo":
        return cls(id=s.id, python_version=s.python_version, modules=list(s.modules),
                   limits=Limits.from_pb(s.limits), image=s.image,
                   created_at=s.created_at_ms / 1000, last_used_at=s.last_used_at_ms / 1000,
                   labels=dict(s.labels), idle_timeout=s.idle_timeout_s,
                   max_concurrent_runs=s.max_concurrent_runs, workers=s.workers,
                   preload=list(s.preload),
                   runner=pb.Runner.Name(s.runner)[len("RUNNER_"):].lower(), owner=s.owner)


@dataclass
class PythonVersion:
    """A Python version the server can create sandboxes for."""

    version: str  # what SafeEval(version=...) may say: "3.11"
    full_version: str  # "3.11.2"; "" = not known yet
    base_image: str


@dataclass
class ServerInfo:
    """What a server offers (safeeval.server_info())."""

    version: str
    build_id: str
    api_version: str
    pythons: List[PythonVersion] = field(default_factory=list)
    default_python_version: str = ""
    default_limits: Limits = field(default_factory=Limits)
    max_limits: Limits = field(default_factory=Limits)
    max_concurrent_runs: int = 0
    max_sandboxes: int = 0

    @property
    def python_versions(self) -> List[str]:
        """The versions SafeEval(version=...) may ask for."""
        return [p.version for p in self.pythons]

    @classmethod
    def from_pb(cls, i) -> "ServerInfo":
        return cls(version=i.version, build_id=i.build_id, api_version=i.api_version,
                   pythons=[PythonVersion(p.version, p.full_version, p.base_image)
                            for p in i.pythons],
                   default_python_version=i.default_python_version,
                   default_limits=Limits.from_pb(i.default_limits),
                   max_limits=Limits.from_pb(i.max_limits),
                   max_concurrent_runs=i.max_concurrent_runs, max_sandboxes=i.max_sandboxes)
