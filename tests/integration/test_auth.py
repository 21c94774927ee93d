#!/usr/bin/python3
"""Who may call (issue 9): identities, tenants, quotas, the socket's rights and
the audit line, against the real daemon with the Python grpcio client and
the C library (through the safeeval CLI).

  Tokens       --tokens: no token, a wrong one, a malformed header; the file
               re-read on SIGHUP (added, revoked, a broken file keeping the
               old one); tenants: another tenant's sandbox answers every call
               exactly as an unknown id; List shows only one's own; an admin
               sees and destroys all; each quota; the audit line of each
               method (request id taken and returned) and no token, code,
               stdin or env value in the log; the CLI with --token-file and
               SAFEEVAL_TOKEN.
  Mtls         --tls-client-ca: the certificate's CN is the identity (JSON
               audit line), a token wins over it, no client certificate and
               a certificate of another CA are refused.
  SocketGroup  --socket-group/--socket-mode/--unix-identities: the socket and
               the folder made for it carry the group and the rights; a
               non-root member of the group creates and lists its own
               sandbox through the CLI and is named by its user name; a user
               outside the group cannot connect.

One daemon per class.
"""
import grpc
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, expect_code  # noqa: E402
from sandbox_engine import (assert_nothing_left, daemon_args, make_wheelhouse,  # noqa: E402
                            processes_of_sandbox, remove_containers_of, wait_until)

C = grpc.StatusCode
CREATE_S = 600
MiB = 1 << 20
CLI = os.path.join(harness.BUILD_DIR, "bin", "safeeval")
UNKNOWN_ID = "0123456789abcdef01234567"


def sha(tok):
    return hashlib.sha256(tok.encode()).hexdigest()


def new_token():
    return "tok-" + os.urandom(16).hex()


class Tenant:
    """A token and the calls made with it."""

    def __init__(self, d, token):
        self.d, self.token, self.pb = d, token, d.pb

    def md(self, rid=None):
        m = [("authorization", "Bearer " + self.token)]
        if rid:
            m.append(("x-request-id", rid))
        return m

    def create(self, **kw):
        kw.setdefault("python_version", "3.11")
        return self.d.stub.CreateSandbox(self.pb.CreateSandboxRequest(**kw), timeout=CREATE_S,
                                         metadata=self.md()).sandbox

    def get(self, sid):
        return self.d.stub.GetSandbox(self.pb.GetSandboxRequest(sandbox_id=sid), timeout=10,
                                      metadata=self.md()).sandbox

    def ids(self):
        r = self.d.stub.ListSandboxes(self.pb.ListSandboxesRequest(), timeout=10,
                                      metadata=self.md())
        return {s.id: s.owner for s in r.sandboxes}

    def ev(self, sid, code, **kw):
        return self.d.stub.Eval(self.pb.EvalRequest(sandbox_id=sid, code=code, **kw), timeout=60,
                                metadata=self.md()).result

    def exe(self, sid):
        return self.d.stub.ExecuteFile(self.pb.ExecuteFileRequest(
            sandbox_id=sid, filename="a.py", content=b"print(1)"), timeout=60,
            metadata=self.md()).result

    def destroy(self, sid):
        self.d.stub.DestroySandbox(self.pb.DestroySandboxRequest(sandbox_id=sid), timeout=60,
                                   metadata=self.md())


def close_daemon(d, admin, live):
    """Destroys `live` as admin, checks the engine, stops the daemon."""
    try:
        for sid in live:
            try:
                admin.destroy(sid)
            except grpc.RpcError as e:
                if e.code() != C.NOT_FOUND:
                    raise
        assert_nothing_left(wait_s=10)
    finally:
        try:
            d.close()
        finally:
            remove_containers_of()


class Tokens(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="safeeval-auth-")
        cls.tok = {n: new_token() for n in ("alice", "bob", "boss", "carol", "dave", "erin")}
        cls.tokens_path = os.path.join(cls.dir, "tokens")
        cls.write_tokens()
        cls.wheels = make_wheelhouse()
        cls.d = Daemon(extra_args=daemon_args(
            cls.wheels, "--tokens", cls.tokens_path, "--log-level", "info",
            "--tenant-max-sandboxes", "4"), timeout=60)
        cls.pb = cls.d.pb
        cls.t = {n: Tenant(cls.d, tok) for n, tok in cls.tok.items()}
        cls.live = []
        try:
            cls.sa = cls.t["alice"].create()
            cls.live.append(cls.sa.id)
            cls.sb = cls.t["bob"].create()
            cls.live.append(cls.sb.id)
        except BaseException:
            close_daemon(cls.d, cls.t["boss"], cls.live)
            raise

    @classmethod
    def write_tokens(cls, erin=False, text=None):
        t = cls.tok
        if text is None:
            text = ("# name sha256 [role] [quotas]\n"
                    "alice %s\n"
                    "bob   %s user   # a comment\n"
                    "boss  %s admin\n"
                    "carol %s user max-sandboxes=1 max-runs=1\n"
                    "dave  %s user max-memory=300M\n"
                    % (sha(t["alice"]), sha(t["bob"]), sha(t["boss"]), sha(t["carol"]),
                       sha(t["dave"])))
            if erin:
                text += "erin %s\n" % sha(t["erin"])
        tmp = cls.tokens_path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, cls.tokens_path)

    @classmethod
    def tearDownClass(cls):
        try:
            close_daemon(cls.d, cls.t["boss"], cls.live)
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def list_with(self, md):
        return self.d.stub.ListSandboxes(self.pb.ListSandboxesRequest(), timeout=10, metadata=md)

    # ---- identities ----

    def test_no_token(self):
        # Catches: --tokens not enforced (the call would list sandboxes);
        # health closed by it (the harness could not have started).
        e = expect_code(lambda: self.list_with(()), C.UNAUTHENTICATED)
        self.assertIn("no valid bearer token", e.details())
        r = self.d.health.Check(self.d.health_pb.HealthCheckRequest(), timeout=5)
        self.assertEqual(r.status, self.d.health_pb.HealthCheckResponse.SERVING)
        # Every method, not just List.
        expect_code(lambda: self.d.stub.GetSandbox(
            self.pb.GetSandboxRequest(sandbox_id=self.sa.id), timeout=10), C.UNAUTHENTICATED)
        expect_code(lambda: self.d.stub.DestroySandbox(
            self.pb.DestroySandboxRequest(sandbox_id=self.sa.id), timeout=10),
            C.UNAUTHENTICATED)

    def test_wrong_token(self):
        # Catches: any token accepted; a prefix or the hash itself accepted;
        # the token echoed in the answer; a second header slipping by.
        wrong = new_token()
        for md in ([("authorization", "Bearer " + wrong)],
                   [("authorization", "Bearer " + self.tok["alice"][:-1])],
                   [("authorization", "Bearer " + sha(self.tok["alice"]))],
                   [("authorization", "Basic " + self.tok["alice"])],
                   [("authorization", self.tok["alice"])],
                   [("authorization", "Bearer " + wrong),
                    ("authorization", "Bearer " + self.tok["alice"])]):
            e = expect_code(lambda: self.list_with(md), C.UNAUTHENTICATED)
            self.assertNotIn(wrong, e.details())
            self.assertNotIn(self.tok["alice"], e.details())
        # "bearer" is case-insensitive (RFC 6750 scheme names are).
        self.list_with([("authorization", "bearer " + self.tok["alice"])])

    def test_cli_token(self):
        # The C library sends co.token; the CLI takes it from --token-file or
        # SAFEEVAL_TOKEN. Catches: the CLI's token not reaching the check.
        env = dict(os.environ, SAFEEVAL_TOKEN=new_token())
        r = subprocess.run([CLI, "-t", self.d.address, "ls"], env=env, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("UNAUTHENTICATED", r.stderr)
        env["SAFEEVAL_TOKEN"] = self.tok["alice"]
        r = subprocess.run([CLI, "-t", self.d.address, "--json", "ls"], env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(self.sa.id, r.stdout)
        self.assertNotIn(self.sb.id, r.stdout)
        # The library hands the owner over (safeeval_sandbox.owner).
        r = subprocess.run([CLI, "-t", self.d.address, "--json", "get", self.sa.id], env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["owner"], "alice")
        tf = os.path.join(self.dir, "bob.token")
        with open(tf, "w") as f:
            f.write(self.tok["bob"] + "\n")
        env.pop("SAFEEVAL_TOKEN")
        r = subprocess.run([CLI, "-t", self.d.address, "--token-file", tf, "get", self.sa.id],
                           env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("NOT_FOUND", r.stderr)

    def test_sighup_reload(self):
        # Catches: the file read once only; a broken file dropping every
        # identity (or keeping a half-read one); a revoked token still in.
        erin = self.t["erin"]
        expect_code(erin.ids, C.UNAUTHENTICATED)
        try:
            self.write_tokens(erin=True)
            self.d.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "identities reloaded" in self.d.log(), 10)
            self.assertEqual(erin.ids(), {})
            self.write_tokens(text="erin not-a-hash\n")
            self.d.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "NOT reloaded" in self.d.log(), 10)
            self.assertIn("64 hex digits", self.d.log())
            self.assertNotIn("not-a-hash", self.d.log())
            erin.ids()  # the earlier file is still in force
            self.t["alice"].ids()
            n = self.d.log().count("identities reloaded")
            self.write_tokens(erin=False)
            self.d.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: self.d.log().count("identities reloaded") > n, 10)
            expect_code(erin.ids, C.UNAUTHENTICATED)
        finally:
            self.write_tokens(erin=False)

    # ---- tenants ----

    def assert_like_unknown(self, fn_of_id, sid):
        """fn_of_id(sid) fails exactly as fn_of_id(UNKNOWN_ID) does."""
        e1 = expect_code(lambda: fn_of_id(UNKNOWN_ID), C.NOT_FOUND)
        e2 = expect_code(lambda: fn_of_id(sid), C.NOT_FOUND)
        self.assertEqual(e2.details().replace(sid, "ID"), e1.details().replace(UNKNOWN_ID, "ID"))

    def test_another_tenants_sandbox_is_unknown(self):
        # Catches: any call reaching another tenant's sandbox, or answering
        # in a way that tells it exists.
        alice, bob = self.t["alice"], self.t["bob"]
        self.assertEqual(alice.get(self.sa.id).owner, "alice")
        self.assertEqual(self.sa.owner, "alice")
        self.assert_like_unknown(bob.get, self.sa.id)
        self.assert_like_unknown(lambda s: bob.ev(s, "print(1)"), self.sa.id)
        self.assert_like_unknown(bob.exe, self.sa.id)
        self.assert_like_unknown(bob.destroy, self.sa.id)
        self.assertNotIn(self.sa.id, bob.ids())
        self.assertEqual(set(alice.ids().values()), {"alice"})
        self.assertIn(self.sa.id, alice.ids())
        # Still there and alice's to use.
        r = alice.ev(self.sa.id, "print(6*7)")
        self.assertEqual(r.stdout, b"42\n")

    def test_admin_sees_and_destroys_all(self):
        # Catches: admin limited to its own; role ignored; owner not filled.
        boss = self.t["boss"]
        ids = boss.ids()
        self.assertEqual(ids.get(self.sa.id), "alice")
        self.assertEqual(ids.get(self.sb.id), "bob")
        self.assertEqual(boss.get(self.sb.id).owner, "bob")
        extra = self.t["bob"].create()
        self.live.append(extra.id)
        boss.destroy(extra.id)
        self.assertNotIn(extra.id, self.t["bob"].ids())

    # ---- quotas ----

    def test_quota_sandboxes_and_runs(self):
        # carol: max-sandboxes=1 max-runs=1 (overriding --tenant-max-sandboxes 4).
        carol = self.t["carol"]
        sb = carol.create()
        self.live.append(sb.id)
        e = expect_code(carol.create, C.RESOURCE_EXHAUSTED)
        self.assertIn("tenant-max-sandboxes", e.details())
        # Another tenant is not held by carol's quota.
        self.assertIsNotNone(self.t["bob"].ids())

        out = {}

        def long_run():
            # The argument marks its python's command line, so the test can
            # see the run going before it asks for a second one.
            out["r"] = carol.ev(sb.id, "import time; time.sleep(6)", args=["carol-long-run"])

        th = threading.Thread(target=long_run)
        th.start()
        try:
            self.assertTrue(wait_until(
                lambda: processes_of_sandbox(sb.id, "carol-long-run") or not th.is_alive(), 30))
            self.assertTrue(th.is_alive(), "the long run ended early: %r" % out)
            denied = expect_code(lambda: carol.ev(sb.id, "pass"), C.RESOURCE_EXHAUSTED)
            self.assertIn("tenant-max-runs", denied.details())
        finally:
            th.join()
        self.assertEqual(out["r"].exit_code, 0)
        carol.ev(sb.id, "pass")  # the run ended: room again

    def test_quota_memory(self):
        # dave: max-memory=300M: 256M x 2 runs does not fit, 256M x 1 does.
        dave = self.t["dave"]
        e = expect_code(lambda: dave.create(limits=self.pb.Limits(memory_bytes=256 * MiB),
                                            max_concurrent_runs=2), C.RESOURCE_EXHAUSTED)
        self.assertIn("tenant-max-memory", e.details())
        sb = dave.create(limits=self.pb.Limits(memory_bytes=256 * MiB), max_concurrent_runs=1)
        self.live.append(sb.id)
        dave.destroy(sb.id)

    # ---- the audit line ----

    def test_audit_line_of_each_call_and_no_secrets(self):
        # Catches: a method without its line; the identity, sandbox or
        # request id missing; the request id not returned; a secret logged.
        alice = self.t["alice"]
        code_mark, stdin_mark, env_mark = ("c" + os.urandom(6).hex(), "s" + os.urandom(6).hex(),
                                           "e" + os.urandom(6).hex())
        rid = "req-" + os.urandom(4).hex()
        calls = {}

        def with_rid(name, fn, req):
            md = alice.md("%s-%s" % (rid, name))
            resp, call = fn.with_call(req, timeout=CREATE_S, metadata=md)
            self.assertIn(("x-request-id", "%s-%s" % (rid, name)),
                          tuple(call.trailing_metadata()))
            calls[name] = resp
            return resp

        st, pb = self.d.stub, self.pb
        sb = with_rid("create", st.CreateSandbox, pb.CreateSandboxRequest(python_version="3.11"))
        sid = sb.sandbox.id
        self.live.append(sid)
        r = with_rid("eval", st.Eval, pb.EvalRequest(
            sandbox_id=sid, code="import os,sys; print('%s', sys.stdin.read(), os.environ['K'])"
            % code_mark, stdin=stdin_mark.encode(), env={"K": env_mark}))
        self.assertIn(env_mark.encode(), r.result.stdout)
        with_rid("exec", st.ExecuteFile, pb.ExecuteFileRequest(
            sandbox_id=sid, filename="m.py", content=("print('%s')" % code_mark).encode()))
        with_rid("get", st.GetSandbox, pb.GetSandboxRequest(sandbox_id=sid))
        with_rid("list", st.ListSandboxes, pb.ListSandboxesRequest())
        with_rid("destroy", st.DestroySandbox, pb.DestroySandboxRequest(sandbox_id=sid))
        # Without x-request-id the daemon makes one and sends it back.
        _, call = st.ListSandboxes.with_call(pb.ListSandboxesRequest(), timeout=10,
                                             metadata=alice.md())
        made = dict(call.trailing_metadata()).get("x-request-id", "")
        self.assertRegex(made, r"^[0-9a-f]{32}$")
        # A request id with characters a log line must not carry is replaced.
        _, call = st.ListSandboxes.with_call(pb.ListSandboxesRequest(), timeout=10,
                                             metadata=alice.md('x" y\\z'))
        self.assertRegex(dict(call.trailing_metadata())["x-request-id"], r"^[0-9a-f]{32}$")
        expect_code(lambda: st.ListSandboxes(pb.ListSandboxesRequest(), timeout=10,
                                             metadata=[("x-request-id", rid + "-anon")]),
                    C.UNAUTHENTICATED)

        log = wait_until(lambda: ("%s-anon" % rid) in self.d.log() and self.d.log(), 10)
        for name, method in (("create", "CreateSandbox"), ("eval", "Eval"),
                             ("exec", "ExecuteFile"), ("get", "GetSandbox"),
                             ("list", "ListSandboxes"), ("destroy", "DestroySandbox")):
            lines = [ln for ln in log.splitlines() if "request_id=%s-%s" % (rid, name) in ln]
            self.assertEqual(len(lines), 1, "%s: %r" % (name, lines))
            ln = lines[0]
            self.assertRegex(ln, r"\binfo\s+rpc %s status=OK duration_ms=[0-9.]+ " % method)
            self.assertIn(" identity=alice ", ln)
            self.assertIn(' peer="unix:uid=%d,pid=%d"' % (os.getuid(), os.getpid()), ln)
            if name != "list":
                self.assertIn(" sandbox=%s " % sid, ln)
        anon = [ln for ln in log.splitlines() if "request_id=%s-anon" % rid in ln]
        self.assertEqual(len(anon), 1, anon)
        self.assertIn("status=UNAUTHENTICATED", anon[0])
        self.assertIn("identity=- ", anon[0])
        for secret in list(self.tok.values()) + [code_mark, stdin_mark, env_mark]:
            self.assertNotIn(secret, log)


class Restart(unittest.TestCase):
    """The owner lives in the containers' labels: a restarted daemon keeps
    every sandbox its tenant's."""

    def test_owner_survives_a_restart(self):
        # Catches: the owner kept in memory only (after a restart bob would
        # see alice's sandbox, or alice lose it).
        tmp = tempfile.mkdtemp(prefix="safeeval-auth-restart-")
        tok = {"alice": new_token(), "bob": new_token(), "boss": new_token()}
        path = os.path.join(tmp, "tokens")
        with open(path, "w") as f:
            f.write("alice %s\nbob %s\nboss %s admin\n"
                    % (sha(tok["alice"]), sha(tok["bob"]), sha(tok["boss"])))
        args = daemon_args(make_wheelhouse(), "--tokens", path)
        d = Daemon(extra_args=args, timeout=60)
        live = []
        try:
            sid = Tenant(d, tok["alice"]).create().id
            live.append(sid)
            self.assertEqual(d.stop(), 0)
            d.close()
            d = Daemon(extra_args=args, timeout=60)
            alice, bob = Tenant(d, tok["alice"]), Tenant(d, tok["bob"])
            self.assertEqual(alice.get(sid).owner, "alice")
            expect_code(lambda: bob.get(sid), C.NOT_FOUND)
            self.assertNotIn(sid, bob.ids())
            self.assertEqual(alice.ev(sid, "print(2)").stdout, b"2\n")
        finally:
            close_daemon(d, Tenant(d, tok["boss"]), live)
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------


def make_pki(dirname, prefix=""):
    """A CA and a server (SAN 127.0.0.1) and client (CN=PREFIXcli) certificate it
    signs (the same recipe as test_contract.make_pki)."""
    def ossl(*args):
        subprocess.run(["openssl"] + list(args), cwd=dirname, check=True, capture_output=True)
    ca = prefix + "ca"
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=safeeval auth test CA %s" % prefix, "-keyout", ca + ".key", "-out", ca + ".pem")
    with open(os.path.join(dirname, prefix + "srv.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    with open(os.path.join(dirname, prefix + "cli.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name in (prefix + "srv", prefix + "cli"):
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % name,
             "-keyout", name + ".key", "-out", name + ".csr")
        ossl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
             "-CAcreateserial", "-days", "2", "-extfile", name + ".ext", "-out", name + ".pem")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Mtls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="safeeval-auth-tls-")
        make_pki(cls.dir)
        make_pki(cls.dir, prefix="other")
        cls.alice = new_token()
        with open(os.path.join(cls.dir, "tokens"), "w") as f:
            f.write("alice %s\ncli - admin max-sandboxes=2\n" % sha(cls.alice))
        cls.port = free_port()
        cls.target = "127.0.0.1:%d" % cls.port
        args = ["--listen", cls.target, "--instance", harness.INSTANCE, "--log-json",
                "--tls-cert", cls.path("srv.pem"), "--tls-key", cls.path("srv.key"),
                "--tls-client-ca", cls.path("ca.pem"), "--tokens", cls.path("tokens")]
        logpath = os.path.join(cls.dir, "stderr.log")
        cls.logf = open(logpath, "wb")
        cls.proc = subprocess.Popen([harness.DAEMON] + args, stdin=subprocess.DEVNULL,
                                    stdout=cls.logf, stderr=cls.logf)
        cls.pb = harness.protos().sandbox_pb2
        cls.ch = cls.channel("cli")
        cls.stub = harness.protos().sandbox_pb2_grpc.SandboxServiceStub(cls.ch)
        try:
            grpc.channel_ready_future(cls.ch).result(timeout=60)
        except grpc.FutureTimeoutError:
            cls.proc.kill()
            raise RuntimeError("safeevald did not serve:\n" + cls.log())

    @classmethod
    def path(cls, name):
        return os.path.join(cls.dir, name)

    @classmethod
    def read(cls, name):
        with open(cls.path(name), "rb") as f:
            return f.read()

    @classmethod
    def channel(cls, cert_prefix=None, ca="ca.pem"):
        kw = {}
        if cert_prefix:
            kw = dict(private_key=cls.read(cert_prefix + ".key"),
                      certificate_chain=cls.read(cert_prefix + ".pem"))
        creds = grpc.ssl_channel_credentials(root_certificates=cls.read(ca), **kw)
        return grpc.secure_channel(cls.target, creds, options=harness.FAST_RECONNECT)

    @classmethod
    def log(cls):
        with open(cls.path("stderr.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.ch.close()
            cls.proc.send_signal(signal.SIGTERM)
            rc = cls.proc.wait(30)
            cls.logf.close()
            if rc != 0:
                raise AssertionError("safeevald exited %d:\n%s" % (rc, cls.log()[-4000:]))
            assert_nothing_left()
        finally:
            remove_containers_of()
            shutil.rmtree(cls.dir, ignore_errors=True)

    def audit_lines(self, rid):
        out = []
        for ln in self.log().splitlines():
            try:
                o = json.loads(ln)
            except ValueError:
                self.fail("not a JSON line with --log-json: %r" % ln)
            if o.get("request_id") == rid:
                out.append(o)
        return out

    def test_certificate_name_is_the_identity(self):
        # Catches: the certificate not used as the identity (UNAUTHENTICATED
        # with --tokens set); its role from the tokens file ignored.
        self.stub.ListSandboxes(self.pb.ListSandboxesRequest(), timeout=10,
                                metadata=[("x-request-id", "mtls-1")])
        lines = wait_until(lambda: self.audit_lines("mtls-1"), 10)
        self.assertEqual(len(lines), 1)
        o = lines[0]
        self.assertEqual((o["msg"], o["method"], o["code"], o["identity"], o.get("role")),
                         ("rpc ListSandboxes", "/safeeval.v1.SandboxService/ListSandboxes", "OK",
                          "cli", "admin"))
        self.assertTrue(o["peer"].startswith("ipv4:127.0.0.1:"), o)
        self.assertIsInstance(o["duration_ms"], (int, float))
        # A bearer token on the same connection names its own tenant.
        self.stub.ListSandboxes(self.pb.ListSandboxesRequest(), timeout=10, metadata=[
            ("x-request-id", "mtls-2"), ("authorization", "Bearer " + self.alice)])
        o = wait_until(lambda: self.audit_lines("mtls-2"), 10)[0]
        self.assertEqual((o["identity"], o.get("role")), ("alice", None))
        # ... and a wrong one is refused, certificate or not.
        expect_code(lambda: self.stub.ListSandboxes(self.pb.ListSandboxesRequest(), timeout=10,
                                                    metadata=[("authorization", "Bearer x")]),
                    C.UNAUTHENTICATED)

    def fails(self, ch):
        stub = harness.protos().sandbox_pb2_grpc.SandboxServiceStub(ch)
        try:
            stub.ListSandboxes(self.pb.ListSandboxesRequest(), timeout=5)
        except grpc.RpcError as e:
            return e.code()
        finally:
            ch.close()
        self.fail("the call succeeded")

    def test_no_client_certificate(self):
        self.assertEqual(self.fails(self.channel(None)), C.UNAVAILABLE)

    def test_certificate_of_another_ca(self):
        # The client trusts the right server CA but shows a certificate
        # another CA signed.
        self.assertEqual(self.fails(self.channel("othercli")), C.UNAVAILABLE)

    def test_wrong_server_ca(self):
        # The client's own check: a server certificate of a CA it does not
        # trust is refused before anything is sent.
        self.assertEqual(self.fails(self.channel("cli", ca="otherca.pem")), C.UNAVAILABLE)


# ---------------------------------------------------------------------------------------------

GROUP, USER = "safeeval-tg", "safeeval-tu"


def ensure_user():
    """A system group and a member user (CI runs as root); None when this
    process cannot make them."""
    if os.getuid() != 0:
        return None
    if subprocess.run(["getent", "group", GROUP], capture_output=True).returncode != 0:
        subprocess.run(["groupadd", "--system", GROUP], check=True, capture_output=True)
    if subprocess.run(["getent", "passwd", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--gid", GROUP, "--shell",
                        "/usr/sbin/nologin", USER], check=True, capture_output=True)
    import grp
    import pwd
    return pwd.getpwnam(USER), grp.getgrnam(GROUP)


class SocketGroup(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ids = ensure_user()
        if ids is None:
            raise unittest.SkipTest("needs root to add a user and a group")
        cls.pw, cls.gr = ids
        cls.base = tempfile.mkdtemp(prefix="safeeval-sock-")
        os.chmod(cls.base, 0o711)
        cls.sock = os.path.join(cls.base, "run", "safeevald.sock")
        # The folder as an earlier start without --socket-group left it:
        # the daemon must open it to the group (the folder it creates is
        # checked by hand in the README's commands).
        os.mkdir(os.path.dirname(cls.sock), 0o700)
        idf = os.path.join(cls.base, "unix-identities")
        with open(idf, "w") as f:
            f.write("%s -\n0 ops admin\n" % USER)
        cls.wheels = make_wheelhouse()
        cls.d = Daemon(listen="unix:" + cls.sock, extra_args=daemon_args(
            cls.wheels, "--socket-group", GROUP, "--unix-identities", idf), timeout=60)
        cls.live = []

    @classmethod
    def tearDownClass(cls):
        try:
            for sid in cls.live:
                cls.d.stub.DestroySandbox(cls.d.pb.DestroySandboxRequest(sandbox_id=sid),
                                          timeout=60)
            assert_nothing_left(wait_s=10)
        finally:
            try:
                cls.d.close()
            finally:
                remove_containers_of()
                shutil.rmtree(cls.base, ignore_errors=True)

    def cli_as(self, user, *args):
        return subprocess.run(["setpriv", "--reuid", user, "--regid",
                               str(__import__("pwd").getpwnam(user).pw_gid), "--init-groups",
                               CLI, "-t", "unix:" + self.sock, "--json"] + list(args),
                              capture_output=True, text=True, timeout=CREATE_S,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})

    def test_rights_and_a_member_of_the_group(self):
        # Catches: the socket left 0755 root:root (the member would get
        # Permission denied); the folder unreachable by the group; the peer's
        # uid not its identity; a user outside the group let in.
        st = os.stat(self.sock)
        self.assertEqual((st.st_mode & 0o777, st.st_gid), (0o660, self.gr.gr_gid))
        dst = os.stat(os.path.dirname(self.sock))
        self.assertEqual((dst.st_mode & 0o777, dst.st_gid), (0o750, self.gr.gr_gid))

        r = self.cli_as(USER, "create", "--python", "3.11")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        sid = json.loads(r.stdout)["id"]
        self.live.append(sid)
        r = self.cli_as(USER, "ls")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(sid, r.stdout)
        r = self.cli_as(USER, "get", sid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["owner"], USER)
        # root is "ops", admin: sees the member's sandbox, named by user name.
        sb = self.d.stub.GetSandbox(self.d.pb.GetSandboxRequest(sandbox_id=sid),
                                    timeout=10).sandbox
        self.assertEqual(sb.owner, USER)
        self.assertRegex(self.d.log(), r"rpc CreateSandbox status=OK .* identity=%s "
                         r"peer=\"unix:uid=%d," % (USER, self.pw.pw_uid))
        # nobody is not in the group: the kernel refuses the connection.
        r = self.cli_as("nobody", "ls")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertNotIn(sid, r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
