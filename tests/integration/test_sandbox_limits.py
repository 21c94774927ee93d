"""Every limit produces its reason, in one reused sandbox: wall time, CPU
time, memory, file size, processes (a fork bomb, then the sandbox still
answers), output (truncated, totals right). Runs have no network and see
nothing of another run."""
import os
import sys
import threading
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sandbox_engine import run_in_sandbox  # noqa: E402


def main():
    run_in_sandbox(dict(wall_time_ms=20000, cpu_time_ms=20000, memory_bytes=256 << 20,
                        max_processes=32, max_output_bytes=1 << 20, max_file_bytes=8 << 20),
                   limits)
    print("OK")


def limits(d, sb):
    pb = d.pb

    def ev(code, **lim):
        t = time.monotonic()
        r = d.stub.Eval(pb.EvalRequest(sandbox_id=sb.id, code=code,
                                       limits=pb.Limits(**lim)), timeout=120).result
        return r, time.monotonic() - t

    def check(name, r, reason):
        ok = r.reason == reason
        print("%-14s reason=%s exit=%d sig=%d wall=%.0fms cpu=%.0fms rss=%dKiB %s" % (
            name, pb.ExitReason.Name(r.reason), r.exit_code, r.signal, r.wall_time_us / 1e3,
            r.cpu_time_us / 1e3, r.max_rss_bytes >> 10, "" if ok else "FAIL"))
        assert ok, (name, r)

    r, t = ev("while True: pass", wall_time_ms=1000, cpu_time_ms=10000)
    check("wall", r, pb.EXIT_REASON_WALL_TIMEOUT)
    assert 0.9 < t < 6, t
    assert 900e3 <= r.wall_time_us < 4e6, r.wall_time_us

    r, _ = ev("while True: pass", cpu_time_ms=500, wall_time_ms=10000)
    check("cpu", r, pb.EXIT_REASON_CPU_TIMEOUT)
    assert r.cpu_time_us >= 400e3, r.cpu_time_us

    r, _ = ev("b = []\nwhile True: b.append(bytearray(16 << 20))\n",
              memory_bytes=64 << 20)
    check("memory", r, pb.EXIT_REASON_MEMORY_LIMIT)

    r, _ = ev("f = open('big', 'wb')\nwhile True: f.write(b'x' * 65536)\n",
              max_file_bytes=1 << 20)
    check("file size", r, pb.EXIT_REASON_FILE_SIZE_LIMIT)

    bomb = ("import os\n"
            "for _ in range(200):\n"
            "    try:\n"
            "        if os.fork() == 0:\n"
            "            import time; time.sleep(30); os._exit(0)\n"
            "    except OSError:\n"
            "        print('fork refused'); break\n")
    r, t = ev(bomb, max_processes=8, wall_time_ms=3000)
    print("fork bomb: %s, %.1f s, stdout %r" % (pb.ExitReason.Name(r.reason), t, r.stdout))
    assert b"fork refused" in r.stdout, r
    # The sleeping children are gone with the run; the sandbox answers.
    r, t = ev("print('alive')")
    assert r.stdout == b"alive\n" and t < 5, (r, t)

    r, _ = ev("import sys\nsys.stdout.write('x' * 300000)\nsys.stderr.write('e' * 5000)\n",
              max_output_bytes=1024)
    check("output", r, pb.EXIT_REASON_EXITED)
    assert r.stdout == b"x" * 1024 and r.stdout_truncated and r.stdout_bytes == 300000, (
        len(r.stdout), r.stdout_truncated, r.stdout_bytes)
    assert len(r.stderr) == 1024 and r.stderr_truncated and r.stderr_bytes == 5000

    # No network from a run.
    r, _ = ev("import socket\n"
              "s = socket.socket()\ns.settimeout(2)\n"
              "try:\n    s.connect(('1.1.1.1', 80)); print('connected')\n"
              "except OSError as e:\n    print('refused', e.errno)\n"
              "print(sorted(n for i, n in socket.if_nameindex()))\n")
    assert b"connected" not in r.stdout and b"refused" in r.stdout, r
    assert b"eth0" not in r.stdout, r.stdout

    # Runs do not see each other: a file and a process of a concurrent run.
    holder = {}

    def long_run():
        holder["r"], _ = ev("import time\nopen('secret.txt','w').write('s3cret')\n"
                            "time.sleep(4)\nprint('done')")
    th = threading.Thread(target=long_run)
    th.start()
    time.sleep(1.5)
    r, _ = ev("import os, glob\n"
              "hits = []\n"
              "for top in ('/tmp', '/work', '/home', '/run', '/dev/shm', '/var/tmp', '.'):\n"
              "    hits += glob.glob(top + '/**/secret.txt', recursive=True)\n"
              "print(hits)\n"
              "print(len([p for p in os.listdir('/proc') if p.isdigit()]))\n"
              "print(os.listdir('.'))\n")
    th.join()
    assert holder["r"].stdout == b"done\n", holder["r"]
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 3, r
    assert lines[0] == "[]", r.stdout
    assert int(lines[1]) <= 3, r.stdout  # only the jail's own processes
    assert "secret.txt" not in lines[2], r.stdout


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as e:
        print("RPC error:", e.code(), e.details())
        raise
