#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<name>/.

Seeds are small, valid (and a few deliberately broken) inputs: docker
streams, engine JSON bodies, tars, agent frames and protobuf requests,
config files. Protobuf is encoded by hand (a few lines) so the script needs
nothing beyond the standard library. The first byte of a docker_parse,
agent, sandbox_validate or config seed selects the parser (see the target's
header comment). Files are named seed-*; fuzzing finds are kept under their
libFuzzer hash names. Run: python3 tests/fuzz/make_seeds.py
"""
import io
import json
import os
import struct
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# --- protobuf, by hand ---
def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(num, v):
    return varint(num << 3) + varint(v)


def f_bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    return varint((num << 3) | 2) + varint(len(b)) + b


def limits(wall=1000, cpu=1000, mem=64 << 20, procs=16, out=1 << 16, fsize=1 << 20):
    return (f_varint(1, wall) + f_varint(2, cpu) + f_varint(3, mem) + f_varint(4, procs)
            + f_varint(5, out) + f_varint(6, fsize))


def pfile(path, content):
    return f_bytes(1, path) + f_bytes(2, content)


def map_entry(k, v):
    return f_bytes(1, k) + f_bytes(2, v)


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def docker_frame(stream, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return bytes([stream, 0, 0, 0]) + struct.pack(">I", len(payload)) + payload


def demux_seeds():
    t = "demux"
    write(t, "stdout", docker_frame(1, "hello\n"))
    write(t, "stderr", docker_frame(2, "Traceback (most recent call last):\n"))
    write(t, "mixed", docker_frame(1, "a") + docker_frame(2, "bb") + docker_frame(1, "ccc\n"))
    write(t, "empty-frame", docker_frame(1, "") + docker_frame(2, "x"))
    write(t, "stdin", docker_frame(0, "in"))
    write(t, "truncated-payload", docker_frame(1, "hello")[:-2])
    write(t, "truncated-header", docker_frame(1, "hello") + b"\x01\x00\x00")
    write(t, "bad-stream", docker_frame(1, "ok") + bytes([3, 0, 0, 0, 0, 0, 0, 1]) + b"x")
    write(t, "bad-padding", bytes([1, 0, 1, 0, 0, 0, 0, 1]) + b"x")
    write(t, "tty", b"Python 3.11.2\r\n>>> ")
    write(t, "huge-length", bytes([1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]) + b"abc")
    write(t, "many", b"".join(docker_frame(1 + i % 2, bytes([65 + i]) * i) for i in range(20)))


def tar_of(entries):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            if kind == "file":
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = data
                tf.addfile(ti)
            elif kind == "hardlink":
                ti.type = tarfile.LNKTYPE
                ti.linkname = data
                tf.addfile(ti)
    # Without tarfile's 10 KiB record padding: the blocks, then the two zero
    # blocks that end an archive.
    data = bio.getvalue().rstrip(b"\0")
    data += b"\0" * (-len(data) % 512)
    return data + b"\0" * 1024


def docker_parse_seeds():
    t = "docker_parse"
    sel = lambda i, body: bytes([i]) + (body.encode() if isinstance(body, str) else body)
    for i, v in enumerate(["1.41", "1.43", "1.50", "1.39", "2.0", "1.", "01.041", "99999.1"]):
        write(t, "version-%d" % i, sel(0, json.dumps({"ApiVersion": v, "Version": "20.10.24"})))
    write(t, "version-nostr", sel(0, '{"ApiVersion":1.41}'))
    write(t, "version-array", sel(0, '[1,2,3]'))
    write(t, "message-json", sel(1, '{"message":"No such container: abc"}'))
    write(t, "message-ansi", sel(1, 'plain \x1b[31mred\x1b[0m text\nline two\x07'))
    write(t, "message-notstr", sel(1, '{"message":{"a":1}}'))
    write(t, "message-empty", sel(1, ''))
    for i, body in enumerate(['{"Running":false,"ExitCode":0}', '{"Running":true,"ExitCode":null}',
                              '{"Running":false,"ExitCode":137}', '{"ExitCode":1e300}',
                              '{"ExitCode":-1}', '{"ExitCode":2.5}', '{"Running":"yes"}', 'null']):
        write(t, "inspect-%d" % i, sel(2, body))
    write(t, "create-ok", sel(3, json.dumps({"Id": "a" * 64, "Warnings": []})))
    write(t, "create-upper", sel(3, json.dumps({"Id": "A" * 64})))
    write(t, "create-short", sel(3, json.dumps({"Id": "abc"})))
    write(t, "create-path", sel(3, json.dumps({"Id": "../../etc/passwd"})))
    build = b"".join(json.dumps(x).encode() + b"\r\n" for x in [
        {"stream": "Step 1/3 : FROM safeeval/python:3.11\n"},
        {"stream": " ---> 1234abcd\n"},
        {"stream": "Collecting numpy\r\n  Downloading...\n"},
        {"aux": {"ID": "sha256:" + "b" * 64}},
        {"stream": "Successfully built 1234abcd\n"},
    ])
    for piece in (0, 1, 7, 63):
        write(t, "build-ok-%d" % piece, sel(4, bytes([piece]) + build))
    failed = build + b"".join(json.dumps(x).encode() + b"\n" for x in [
        {"stream": "ERROR: No matching distribution found for nosuchpkg\n"},
        {"errorDetail": {"code": 1, "message": "returned a non-zero code: 1"},
         "error": "The command '/bin/sh -c pip install' returned a non-zero code: 1"},
    ])
    write(t, "build-failed", sel(4, bytes([2]) + failed))
    write(t, "build-garbage", sel(4, b"\x05not json\n{\"error\":5}\n{\"stream\":\"no newline"))
    write(t, "build-ring", sel(4, b"\x3f" + b"".join(
        json.dumps({"stream": "line %d %s\n" % (i, "x" * 300)}).encode() + b"\n"
        for i in range(40)) + b'{"error":"boom"}\n'))
    tars = {
        "tar-file": tar_of([("python-version", "file", b"3.11.2\n")]),
        "tar-empty-file": tar_of([("f", "file", b"")]),
        "tar-dir": tar_of([("d/", "dir", None)]),
        "tar-symlink": tar_of([("l", "symlink", "/etc/passwd")]),
        "tar-hardlink": tar_of([("h", "hardlink", "python-version")]),
        "tar-two": tar_of([("a", "file", b"1"), ("b", "file", b"2")]),
        "tar-big": tar_of([("big", "file", b"z" * 5000)]),
    }
    for i, (name, data) in enumerate(tars.items()):
        write(t, name, sel(5, bytes([4]) + data))
    write(t, "tar-truncated", sel(5, bytes([5]) + tars["tar-file"][:600]))
    write(t, "tar-overcap", sel(5, bytes([2]) + tars["tar-file"]))
    write(t, "tar-garbage", sel(5, b"\x04" + b"\x00" * 100 + b"not a tar"))


def run_request(script=b"print('hi')\n", filename="main.py", stdin=b"", args=(), env=(),
                lim=None, files=()):
    m = f_bytes(1, script) + f_bytes(2, filename)
    if stdin:
        m += f_bytes(3, stdin)
    for a in args:
        m += f_bytes(4, a)
    for k, v in env:
        m += f_bytes(5, map_entry(k, v))
    m += f_bytes(6, lim if lim is not None else limits())
    for p, c in files:
        m += f_bytes(7, pfile(p, c))
    return m


def agent_request(rid, op, value=b""):
    """A Request: op is "run" (value = RunRequest bytes), "cancel", "ack" or "sync"."""
    m = f_varint(1, rid) if rid else b""
    if op == "run":
        return m + f_bytes(2, value)
    return m + f_varint({"cancel": 3, "ack": 4, "sync": 5}[op], 1)


def agent_seeds():
    t = "agent"
    d = os.path.join(CORPUS, t)
    if os.path.isdir(d):
        for name in os.listdir(d):
            if name.startswith("seed-"):
                os.remove(os.path.join(d, name))
    full = run_request(stdin=b"input\n", args=["-v", "x y"], env=[("LANG", "C.UTF-8"), ("A_1", "")],
                       files=[("data/in.csv", b"a,b\n1,2\n"), ("lib/util.py", b"X = 1\n")])
    runs = {
        "min": run_request(),
        "full": full,
        "nolimits": run_request(lim=b""),
        "zero-mem": run_request(lim=limits(mem=1)),
        "badpath": run_request(files=[("../etc/x", b"")]),
        "collide": run_request(files=[("main.py/x", b"")]),
        "dup": run_request(files=[("a", b""), ("a", b"")]),
        "dirfile": run_request(files=[("a", b""), ("a/b", b"")]),
        "badenv": run_request(env=[("A=B", "x")]),
        "emptyscript": run_request(script=b""),
        "slash-name": run_request(filename="a/b.py"),
        "nul-arg": run_request(args=["a\0b"]),
        "nul-env": run_request(env=[("K\0X", "v")]),
        "nul-path": run_request(files=[("etc/passwd\0x", b"")]),
    }
    reqs = {"run-" + k: agent_request(7, "run", v) for k, v in runs.items()}
    reqs.update({
        "sync": agent_request(0, "sync"),
        "sync-id": agent_request(3, "sync"),
        "cancel": agent_request(7, "cancel"),
        "cancel-0": agent_request(0, "cancel"),
        "ack": agent_request(7, "ack"),
        "bigid": agent_request((1 << 64) - 1, "ack"),
        "noop": f_varint(1, 9),
        "empty": b"",
        "run-first": f_bytes(2, runs["min"]) + f_varint(1, 7),
        "two-ops": agent_request(7, "cancel") + f_varint(4, 1),
    })
    for name, r in reqs.items():
        write(t, "req-" + name, b"\x01" + r)
    for name, r in runs.items():
        write(t, "runreq-" + name, b"\x02" + r)
    session = (frame(agent_request(0, "sync")) + frame(agent_request(1, "run", full))
               + frame(agent_request(1, "cancel")) + frame(agent_request(1, "ack")))
    # byte 0 of a stream: bit 0 busy, bit 1 small max; byte 1: piece size - 1
    for flags in range(4):
        for piece in (0, 3, 255):
            write(t, "stream-session-%d-%d" % (flags, piece), b"\x00" + bytes([flags, piece]) + session)
    write(t, "stream-partial", b"\x00\x00\x07" + frame(agent_request(1, "run", full))[:-3])
    write(t, "stream-overmax", b"\x00\x02\x00" + struct.pack(">I", 5000) + b"x" * 10)
    write(t, "stream-garbage", b"\x00\x00\x01" + frame(b"\xff\xff\xff") + frame(agent_request(0, "sync")))
    write(t, "stream-busy-run", b"\x00\x01\x10" + frame(agent_request(300, "run", full)) + frame(agent_request(300, "cancel")))
    # events: op byte (bit 0 Done; output: bit 2 stream, bits 1-3 = 7 the daemon reads,
    # bits 4-7 low length), length byte, data
    ev = b""
    for i in range(6):
        ev += bytes([0x00 | (i & 1) << 2, 1]) + b"o" * 256
    ev += bytes([0x0e, 0]) + b"" + bytes([0x01, 5]) + b"error" + bytes([0x05, 3]) + b"res"
    write(t, "events-mixed", b"\x03" + ev)
    write(t, "events-fill", b"\x03" + (bytes([0xf0, 255]) + b"z" * (255 * 256 + 15)) * 6)
    write(t, "events-done-long", b"\x03" + bytes([0x03, 255]) + b"\x00e" * 200)
    write(t, "events-empty", b"\x03")


def sandbox_seeds():
    t = "sandbox_validate"
    sid = "0123456789abcdef01234567"

    def run_fields(first_is_code, script, name=None, stdin=b"", args=(), env=(), lim=None,
                   files=()):
        m = f_bytes(1, sid)
        if first_is_code:
            m += f_bytes(2, script)
            base = 3
        else:
            m += f_bytes(2, name) + f_bytes(3, script)
            base = 4
        if stdin:
            m += f_bytes(base, stdin)
        for a in args:
            m += f_bytes(base + 1, a)
        for k, v in env:
            m += f_bytes(base + 2, map_entry(k, v))
        if lim is not None:
            m += f_bytes(base + 3, lim)
        for p, c in files:
            m += f_bytes(base + 4, pfile(p, c))
        return m

    evals = {
        "min": run_fields(True, "print(1)"),
        "full": run_fields(True, "import sys; print(sys.argv)", stdin=b"in", args=["a", "b"],
                           env=[("FOO", "bar"), ("_X", "")], lim=limits(wall=500, mem=32 << 20),
                           files=[("data/a.csv", b"1,2"), ("b.txt", b"")]),
        "lowmem": run_fields(True, "x", lim=limits(mem=1)),
        "lowlimits": run_fields(True, "x", lim=limits(wall=1, cpu=1, mem=1, procs=1, out=1,
                                                      fsize=1)),
        "overlimit": run_fields(True, "x", lim=limits(wall=10 ** 9)),
        "empty": run_fields(True, ""),
        "reserved-env": run_fields(True, "x", env=[("SAFEEVAL_X", "1")]),
        "dup-env": run_fields(True, "x", env=[("A", "1"), ("A", "2")]),
        "bad-path": run_fields(True, "x", files=[("/etc/passwd", b"")]),
        "collide": run_fields(True, "x", files=[("main.py", b"")]),
        "ctrl-path": run_fields(True, "x", files=[("a\tb", b"")]),
        "deep-path": run_fields(True, "x", files=[("/".join(["d"] * 40), b"")]),
        # "." and empty components are normalised away, ".." is not
        "dot-paths": run_fields(True, "x", files=[("./a.txt", b""), ("d/./b", b""),
                                                  ("d//c/", b"")]),
        "dot-dup": run_fields(True, "x", files=[("a.txt", b""), ("./a.txt", b"")]),
        "dot-collide": run_fields(True, "x", files=[("./main.py", b"")]),
        "dot-only": run_fields(True, "x", files=[("./.", b"")]),
        "dot-dotdot": run_fields(True, "x", files=[("./../x", b"")]),
    }
    for name, r in evals.items():
        write(t, "eval-" + name, b"\x00" + r)
    execs = {
        "min": run_fields(False, "print(1)", name="job.py"),
        "full": run_fields(False, "print(2)", name="job.py", stdin=b"x", args=["--n", "3"],
                           env=[("N", "3")], lim=limits(), files=[("in/x.bin", b"\x00\x01")]),
        "slash": run_fields(False, "x", name="a/b.py"),
        "dotdot": run_fields(False, "x", name=".."),
        "nul-content": run_fields(False, b"print(1)\x00junk", name="job.py"),
        "under-script": run_fields(False, "x", name="job.py", files=[("job.py/x", b"")]),
        "dot-under-script": run_fields(False, "x", name="job.py", files=[("./job.py//x", b"")]),
    }
    for name, r in execs.items():
        write(t, "exec-" + name, b"\x01" + r)

    def create(ver="", mods=(), lim=None, idle=0, labels=(), preload=(), runner=0):
        m = b""
        if ver:
            m += f_bytes(1, ver)
        for x in mods:
            m += f_bytes(2, x)
        if lim is not None:
            m += f_bytes(3, lim)
        if idle:
            m += f_varint(4, idle)
        for k, v in labels:
            m += f_bytes(5, map_entry(k, v))
        for x in preload:
            m += f_bytes(7, x)
        if runner:
            m += f_varint(8, runner)
        return m

    creates = {
        "empty": create(),
        "full": create("3.11", ["numpy", "requests==2.31.0", "pandas[excel]>=2.0,<3"],
                       limits(), 120, [("team", "ml"), ("job", "42")]),
        "micro": create("3.13.1"),
        "badver": create("3.11; rm -rf /"),
        "url": create(mods=["git+https://example.com/x.git"]),
        "option": create(mods=["--index-url=http://evil"]),
        "dup": create(mods=["Foo_Bar", "foo-bar"]),
        "idle-over": create(idle=10 ** 6),
        "badlabel": create(labels=[("Bad Key", "v")]),
        "zygote": create(mods=["numpy"], preload=["numpy", "xml.dom"], runner=2),
        "preload-bad": create(preload=["numpy", "os;x"], runner=2),
        "runner-bad": create(runner=9),
    }
    for name, r in creates.items():
        write(t, "create-" + name, b"\x02" + r)
    spec = {"modules": ["numpy"], "labels": {"team": "ml"},
            "limits": {"wall_time_ms": 5000, "cpu_time_ms": 5000, "memory_bytes": 268435456,
                       "max_processes": 32, "max_output_bytes": 1048576,
                       "max_file_bytes": 16777216},
            "v": 1, "python": "3.11", "idle_timeout_s": 600, "created_at_ms": 1700000000000}
    write(t, "spec-ok", b"\x03" + json.dumps(spec, separators=(",", ":")).encode())
    for name, patch in [("v2", {"v": 2}), ("neg", {"idle_timeout_s": -1}),
                        ("frac", {"created_at_ms": 1.5}), ("big", {"created_at_ms": 1e300}),
                        ("badmod", {"modules": ["a b"]}), ("labels-arr", {"labels": []}),
                        ("lim-str", {"limits": {"wall_time_ms": "1"}}),
                        ("zygote", {"preload": ["numpy"], "runner": 2}),
                        ("runner-default", {"runner": 0}), ("preload-bad", {"preload": ["1x"]})]:
        s = dict(spec)
        s.update(patch)
        write(t, "spec-" + name, b"\x03" + json.dumps(s).encode())
    write(t, "spec-notobj", b"\x03[]")
    for i, s in enumerate(["numpy", "requests==2.31.0", "pandas[excel,html]~=2.0", "a.b-c_d",
                           "x===1.0", "x!=1.*", "3.11", "3.11.4", "03.11", "3..11",
                           "0123456789abcdef01234567", "job.py", "data/in.csv", "a/../b",
                           "default", "numpy; os_name=='nt'", "-r req.txt", "x @ file:///x",
                           "./a", "a/./b/.", ".", "./..", "a//b", "./", "/./a"]):
        write(t, "str-%02d" % i, b"\x04" + s.encode())


def pbcheck_seeds():
    """Requests of every method (1st byte: the index in rpc_sandbox_methods:
    0 Create, 1 Eval, 2 ExecuteFile, 3 Destroy, 4 Get, 5 List), clean and with
    a NUL in each kind of string field, and a few broken ones."""
    t = "pbcheck"
    sid = b"0123456789abcdef01234567"
    lim = limits()
    eval_ok = (f_bytes(1, sid) + f_bytes(2, "print(1)") + f_bytes(3, b"in\x00put")
               + f_bytes(4, "a") + f_bytes(5, map_entry("HOME", "/tmp")) + f_bytes(6, lim)
               + f_bytes(7, pfile("d/in.csv", b"1\x002")))
    seeds = {
        "create-ok": (0, f_bytes(1, "3.11") + f_bytes(2, "numpy") + f_bytes(3, lim)
                      + f_varint(4, 60) + f_bytes(5, map_entry("team", "ml"))),
        "create-nul-module": (0, f_bytes(2, "numpy") + f_bytes(2, b"numpy\x00--index-url=x")),
        "create-nul-label-key": (0, f_bytes(5, map_entry(b"k\x00x", "v"))),
        "create-nul-label-value": (0, f_bytes(5, map_entry("team", b"m\x00l"))),
        "eval-ok": (1, eval_ok),
        "eval-nul-code": (1, f_bytes(1, sid) + f_bytes(2, b"print(1)\x00import os")),
        "eval-nul-arg": (1, f_bytes(2, "x") + f_bytes(4, "a") + f_bytes(4, b"a\x00b")),
        "eval-nul-env-key": (1, f_bytes(5, map_entry(b"K\x00X", "v"))),
        "eval-nul-env-value": (1, f_bytes(5, map_entry("K", b"v\x00"))),
        "eval-nul-path": (1, f_bytes(7, pfile(b"etc/passwd\x00x", b""))),
        "eval-unknown": (1, eval_ok + f_varint(99, 1) + f_bytes(100, b"\x00")
                         + varint((101 << 3) | 1) + b"\x00" * 8),
        "eval-trunc": (1, eval_ok[:-3]),
        "eval-group": (1, bytes([(9 << 3) | 3]) + eval_ok),
        "exec-ok": (2, f_bytes(1, sid) + f_bytes(2, "job.py") + f_bytes(3, b"print(1)\x00")
                    + f_bytes(5, "x") + f_bytes(6, map_entry("A", "b")) + f_bytes(7, lim)
                    + f_bytes(8, pfile("a", b"\x00"))),
        "exec-nul-filename": (2, f_bytes(2, b"job.py\x00.sh")),
        "destroy-nul": (3, f_bytes(1, b"ab\x00cd")),
        "get-ok": (4, f_bytes(1, sid)),
        "get-nul": (4, f_bytes(1, b"ab\x00cd")),
        "list-empty": (5, b""),
        "list-unknown": (5, f_bytes(1, b"\x00")),
    }
    for name, (method, msg) in seeds.items():
        write(t, name, bytes([method]) + msg)


def config_seeds():
    t = "config"
    text = ("# safeevald.conf\n\nname = hello world\nflag = yes\nworkers=8\n  count = 42\n"
            "max-request-bytes = 16M\nany-bytes = 4G\npath = /var/lib/x#y\r\n")
    write(t, "text-ok", b"\x00" + text.encode())
    for i, bad in enumerate(["workers = 0\n", "workers = 65\n", "nosuch = 1\n", "flag\n",
                             "any-u32 = 4294967296\n", "any-bytes = 99999999999G\n",
                             "count = -1\n", "count = 0x10\n", "name = a\x00b\n",
                             "x" * 5000 + " = 1\n", "max-request-bytes = 1K\n"]):
        write(t, "text-bad-%02d" % i, b"\x00" + bad.encode())
    write(t, "argv-ok", b"\x01--workers\n8\n--flag\n--name=x\n--any-bytes=64K")
    write(t, "argv-help", b"\x01--workers=2\n-h")
    write(t, "argv-missing", b"\x01--name")
    write(t, "argv-stray", b"\x01stray")
    write(t, "argv-boolval", b"\x01--flag=off\n--flag\ntrue")
    for i, v in enumerate(["512", "64K", "16M", "4G", "1T", "16m", "", "K", "18446744073709551615",
                           "18446744073709551616", "17179869184G", " 1", "1 ", "true", "On"]):
        write(t, "value-%02d" % i, b"\x02" + v.encode())


def collect_seeds():
    """The jail's files-back records (agent/collect.c): caps, piece size,
    then records."""
    t = "collect"

    def f(path, size):
        p = path.encode()
        return b"F" + struct.pack("<H", len(p)) + p + struct.pack("<Q", size)

    def d(data):
        return b"D" + struct.pack("<I", len(data)) + data

    head = bytes([7, 255, 0])
    write(t, "two-files", head + f("a.csv", 3) + d(b"abc") + f("out/b.bin", 0) + b"E")
    write(t, "pieces", bytes([7, 255, 4]) + f("x", 5) + d(b"12") + d(b"345") + b"TE")
    write(t, "truncated", head + f("a", 1) + d(b"z") + b"T" + b"E")
    write(t, "out-of-order", head + f("b", 0) + f("a", 0) + b"E")
    write(t, "over-count", bytes([0, 255, 0]) + f("a", 0) + f("b", 0))
    write(t, "over-bytes", bytes([7, 0, 0]) + f("a", 1))
    write(t, "dotdot", head + f("../etc/passwd", 0))
    write(t, "too-much-data", head + f("a", 1) + d(b"xy"))
    write(t, "cut", head + f("a", 10) + d(b"12345"))


def identity_seeds():
    """First byte: even = --tokens, odd = --unix-identities; then the file."""
    t = "identity"
    h = "0123456789abcdef" * 4
    write(t, "tokens", b"\x00# operators\nalice %s admin\nbob %s user max-runs=2 "
          b"max-sandboxes=3 max-memory=1G\ncarol -\n" % (h.encode(), h.encode()))
    write(t, "tokens-rotation", b"\x00alice %s\nalice %s\n" % (h.encode(), h.upper().encode()))
    write(t, "tokens-bad-hex", b"\x00alice 0123\n")
    write(t, "tokens-order", b"\x00alice - max-runs=1 admin\n")
    write(t, "tokens-fields", b"\x00a - b c d e f g h i j\n")
    write(t, "tokens-crlf-nul", b"\x00alice -\r\nbo\x00b -\n")
    write(t, "unix", b"\x01root admin-team admin\n1000 dev user max-runs=1\n* -\n")
    write(t, "unix-dup", b"\x011000 -\n1000 bob\n")
    write(t, "unix-uid", b"\x0199999999999 bob\n")
    write(t, "name", b"\x00CN with spaces")


def main():
    identity_seeds()
    collect_seeds()
    demux_seeds()
    docker_parse_seeds()
    agent_seeds()
    sandbox_seeds()
    pbcheck_seeds()
    config_seeds()


if __name__ == "__main__":
    main()
