"""The installed service: `cmake --install` of the build tree into a
temporary prefix gives a daemon that runs from there with nothing of the
source or build tree (started with cwd /, no --agent, --recipe-dir or
--docker-host: it finds its agent and recipe under the prefix, and the
engine through DOCKER_HOST), through a full create / eval / destroy with the
installed CLI (which finds libsafeeval.so.0 through its RPATH). Also: both
--version lines, the sample config (every setting of --help, each line
parsing back to the defaults), the systemd unit (systemd-analyze verify when
there is one), DOCKER_HOST honoured and overridden by --docker-host, and a
daemon without its agent refusing to start naming --agent."""
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from sandbox_engine import assert_nothing_left, engine_get  # noqa: E402

ENGINE = "unix:///var/run/docker.sock"


def image_missing(ref):
    st, _ = engine_get("/images/%s/json" % urllib.parse.quote(ref, safe=""))
    return st == 404


def run(args, **kw):
    kw.setdefault("cwd", "/")
    kw.setdefault("timeout", 120)
    return subprocess.run(args, capture_output=True, text=True, **kw)


class Installed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.prefix = tempfile.mkdtemp(prefix="safeeval-prefix-")
        r = run(["cmake", "--install", harness.BUILD_DIR, "--prefix", cls.prefix], timeout=300)
        if r.returncode != 0:
            shutil.rmtree(cls.prefix, ignore_errors=True)
            raise AssertionError(r.stdout + r.stderr)
        cls.bin = os.path.join(cls.prefix, "bin")
        cls.daemon = os.path.join(cls.bin, "safeevald")
        cls.cli = os.path.join(cls.bin, "safeeval")
        # The daemon's own settings only: no LD_LIBRARY_PATH or DOCKER_* from
        # whoever runs the test.
        cls.env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("DOCKER_", "LD_", "SAFEEVAL_"))}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.prefix, ignore_errors=True)

    def test_tree(self):
        files = sorted(os.path.relpath(p, self.prefix)
                       for p in glob.glob(self.prefix + "/**", recursive=True)
                       if os.path.isfile(p))
        print("installed:\n  " + "\n  ".join(files))
        for want in ("bin/safeevald", "bin/safeeval", "libexec/safeeval/safeeval-agent",
                     "share/safeeval/sandbox/Dockerfile.in",
                     "share/safeeval/sandbox/seccomp.json",
                     "share/safeeval/sandbox/pip-install.sh",
                     "share/doc/safeeval/safeevald.conf",
                     "lib/systemd/system/safeevald.service"):
            self.assertIn(want, files)
        self.assertTrue([f for f in files if re.search(r"/libsafeeval\.so\.0$", f)], files)
        # The recipe is the source's, byte for byte (the image tag hashes it).
        src = os.path.join(harness.SOURCE_DIR, "docker", "sandbox")
        for name in os.listdir(src):
            with open(os.path.join(src, name), "rb") as a, \
                    open(os.path.join(self.prefix, "share/safeeval/sandbox", name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)

    def test_versions_and_rpath(self):
        v = run([self.daemon, "--version"], env=self.env)
        self.assertEqual(v.returncode, 0, v.stderr)
        m = re.fullmatch(r"safeevald (\d+\.\d+\.\d+) \(build ([0-9a-f]{16}), agent ([0-9a-f]{16})\)\n",
                         v.stdout)
        self.assertIsNotNone(m, v.stdout)
        with open(os.path.join(harness.SOURCE_DIR, "CMakeLists.txt")) as f:
            project_version = re.search(r"project\(safeeval VERSION (\S+)", f.read()).group(1)
        self.assertEqual(m.group(1), project_version)
        agent = run([os.path.join(self.prefix, "libexec/safeeval/safeeval-agent"), "--version"])
        self.assertIn(m.group(3), agent.stdout + agent.stderr)
        # The CLI links libsafeeval.so.0: it runs only if its RPATH finds it.
        c = run([self.cli, "--version"], env=self.env)
        self.assertEqual(c.returncode, 0, c.stderr)
        self.assertEqual(c.stdout, "safeeval %s (libsafeeval %s, build %s)\n"
                         % (project_version, project_version, m.group(2)))
        ldd = run(["ldd", self.cli], env=self.env).stdout
        lib = re.search(r"libsafeeval\.so\.0 => (\S+)", ldd).group(1)
        self.assertTrue(os.path.realpath(lib).startswith(os.path.realpath(self.prefix)), ldd)
        # --help names no path of the build machine.
        h = run([self.daemon, "--help"], env=self.env).stdout
        for tree in (harness.SOURCE_DIR, harness.BUILD_DIR, self.prefix):
            self.assertNotIn(tree, h)

    def test_sample_config(self):
        with open(os.path.join(self.prefix, "share/doc/safeeval/safeevald.conf")) as f:
            sample = f.read()
        printed = run([self.daemon, "--print-config"], env=self.env).stdout
        self.assertEqual(sample, printed)
        # Every setting --help lists is in the sample, and nothing else.
        h = run([self.daemon, "--help"], env=self.env).stdout
        flags = set(re.findall(r"^  --([a-z0-9-]+)", h, re.M)) - {
            "config", "help", "version", "print-config"}
        names = set(re.findall(r"^#?([a-z0-9-]+) =", sample, re.M))
        self.assertEqual(flags, names)
        self.assertIn("Booleans: true/false, yes/no, on/off or 1/0", sample)
        # Uncommented, every line parses and sets exactly the defaults.
        conf = os.path.join(tempfile.mkdtemp(prefix="safeeval-conf-"), "all.conf")
        with open(conf, "w") as f:
            f.write(re.sub(r"^#([a-z0-9-]+ = )", r"\1", sample, flags=re.M))
        again = run([self.daemon, "--config", conf, "--print-config"], env=self.env)
        shutil.rmtree(os.path.dirname(conf))
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(again.stdout, sample)

    def test_unit(self):
        unit = os.path.join(self.prefix, "lib/systemd/system/safeevald.service")
        with open(unit) as f:
            text = f.read()
        self.assertIn("\nType=notify\n", text)
        self.assertIn("\nExecStart=%s --config " % self.daemon, text)
        self.assertIn("After=docker.service", text)
        if shutil.which("systemd-analyze"):
            r = run(["systemd-analyze", "verify", unit])
            # Only complaints about units this machine lacks are not ours.
            bad = [ln for ln in (r.stdout + r.stderr).splitlines()
                   if ln.strip() and "docker.service" not in ln
                   and "network-online.target" not in ln]
            self.assertEqual(bad, [], r.stdout + r.stderr)
            print("systemd-analyze verify: clean")

    def test_refusals(self):
        # DOCKER_HOST is read (a socket that is not there is named)...
        env = dict(self.env, DOCKER_HOST="unix:///nonexistent/docker.sock")
        r = run([self.daemon, "--listen", "unix:" + os.path.join(self.prefix, "r.sock")], env=env,
                timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("unix:///nonexistent/docker.sock", r.stderr)
        # ... and --docker-host overrides it (here: a bad one, refused by name).
        r = run([self.daemon, "--docker-host", "tcp://bad host:1"], env=env)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("tcp://bad host:1", r.stderr)
        self.assertNotIn("nonexistent", r.stderr)
        # A daemon without its agent refuses to start, naming the flag.
        r = run([self.daemon, "--agent", "/nonexistent/safeeval-agent"], env=self.env)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--agent", r.stderr)
        r = run([self.daemon, "--recipe-dir", "/nonexistent"], env=self.env)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--recipe-dir", r.stderr)

    @unittest.skipIf(os.environ.get("SAFEEVAL_SANITIZED") == "1",
                     "an ASan/UBSan libsafeeval.a cannot be linked -static (the sanitizer "
                     "runtimes are shared); the plain build's run checks the recipe")
    def test_static_link(self):
        # The README's static recipe, against the installed .pc: a binary
        # with no dynamic dependency at all, that runs.
        pc = run(["pkg-config", "--static", "--cflags", "--libs", "safeeval"],
                 env=dict(self.env, PKG_CONFIG_PATH=os.path.join(self.prefix, "lib/pkgconfig")))
        self.assertEqual(pc.returncode, 0, pc.stderr)
        out = os.path.join(self.prefix, "tldr-static")
        cc = run(["cc", "-static", "-o", out, os.path.join(harness.SOURCE_DIR, "examples/tldr.c")]
                 + pc.stdout.split() + ["-lstdc++", "-lm"], env=self.env, timeout=600)
        self.assertEqual(cc.returncode, 0, cc.stderr)
        self.assertIn("statically linked", run(["file", out]).stdout)
        self.assertIn("not a dynamic executable", (lambda r: r.stdout + r.stderr)(run(["ldd", out])))
        r = run([out, "unix:/nonexistent/safeevald.sock"], env=self.env, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("UNAVAILABLE", r.stderr)
        os.unlink(out)

    def test_full_cycle(self):
        # Started from /, with nothing but the prefix; the engine from
        # DOCKER_HOST, with a bogus --docker-host nowhere in sight; systemd's
        # notify socket played by this test.
        notify_dir = tempfile.mkdtemp(prefix="safeeval-notify-")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(os.path.join(notify_dir, "notify"))
        notify.settimeout(30)
        old_daemon, old_cwd = harness.DAEMON, os.getcwd()
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env, DOCKER_HOST=ENGINE,
                          NOTIFY_SOCKET=os.path.join(notify_dir, "notify"))
        harness.DAEMON = self.daemon
        os.chdir("/")
        try:
            d = harness.Daemon(extra_args=["--base-image", "safeeval/python:{version}"],
                               timeout=60)
        finally:
            harness.DAEMON = old_daemon
            os.chdir(old_cwd)
            os.environ.clear()
            os.environ.update(saved)
        try:
            # Type=notify: ready once serving (the harness saw SERVING).
            msg = notify.recv(4096).decode()
            self.assertEqual(msg, "READY=1\nSTATUS=serving on %s" % d.address)
            log = d.log()
            self.assertIn("docker engine %s" % ENGINE, log)
            agent = re.search(r"agent (\S+), recipe (\S+), seccomp profile (\S+)", log)
            for path in agent.groups():
                self.assertTrue(path.startswith(self.prefix + "/"), log)
            target = ["--target", d.address]
            c = run([self.cli] + target + ["create", "--python", "3.11"], env=self.env,
                    timeout=600)
            self.assertEqual(c.returncode, 0, c.stderr)
            sid = c.stdout.strip()
            try:
                e = run([self.cli] + target + ["eval", sid, "-c", "print(6 * 7)"], env=self.env)
                self.assertEqual((e.returncode, e.stdout), (0, "42\n"), e.stderr)
            finally:
                x = run([self.cli] + target + ["destroy", sid], env=self.env)
                self.assertEqual(x.returncode, 0, x.stderr)
            print("installed daemon: create, eval (42), destroy through the installed CLI")
            # A version without a base image: the message says how to get one.
            if image_missing("safeeval/python:3.9"):
                c = run([self.cli] + target + ["create", "--python", "3.9"], env=self.env)
                self.assertEqual(c.returncode, 3, c.stderr)
                self.assertIn("docker/base/build-base bullseye", c.stderr)
            assert_nothing_left()
            self.assertEqual(d.stop(), 0)
            self.assertEqual(notify.recv(4096).decode(), "STOPPING=1\nSTATUS=draining calls")
        finally:
            d.close()
            notify.close()
            shutil.rmtree(notify_dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
