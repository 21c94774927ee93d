"""What an operator and a generic gRPC client see of safeevald (issue 10's
gRPC side), each against the real daemon and dockerd:

  HealthFollowsEngine  the engine behind a proxy (test_contract.EngineProxy):
              Check and a Watch stream go NOT_SERVING when it stops answering
              and SERVING when it is back; unknown services; at SIGTERM the
              Watch gets NOT_SERVING and ends UNAVAILABLE.
  HealthKick  a probe interval of 10 minutes: only a failed engine call can
              turn health NOT_SERVING within the test.
  Reflection  a client with no .proto (reflection protos from Debian's
              grpc-proto only) lists the services, fetches the descriptors,
              builds the message classes from them and runs
              CreateSandbox/Eval/DestroySandbox; v1alpha too; errors.
  MetricsAndLogs  --metrics-listen scraped and parsed after known calls
              (counts by method and code, runs by reason, histograms, gauges);
              --log-json call lines parsed (method, code, duration_ms,
              sandbox, peer, request_id); x-request-id and safeeval-version
              in the trailing metadata; Watch streams bounded.
  TlsReload   SIGHUP with a new certificate: a client trusting only the new
              CA connects, one trusting only the old does not, an open
              stream goes on; a broken file or a foreign key keeps the
              certificate in use and the log says why.
"""
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
import urllib.error
import urllib.request

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, expect_code, run_daemon  # noqa: E402
from sandbox_engine import (assert_exited_ok, daemon_args, finish,  # noqa: E402
                            make_wheelhouse, remove_containers_of, wait_until)
from test_contract import EngineProxy, RawDaemon, free_port, make_pki  # noqa: E402

C = grpc.StatusCode
SVC = "safeeval.v1.SandboxService"
GRPC_PROTO = "/usr/share/grpc-proto"

_ops = None


def ops_protos():
    """The reflection v1/v1alpha modules, generated from Debian's grpc-proto
    into a temp dir (copied under another folder name first: generated from
    grpc/..., they would be a package `grpc` that hides grpcio's), and the
    harness's health messages."""
    global _ops
    if _ops is not None:
        return _ops
    out = tempfile.mkdtemp(prefix="safeeval-ops-pb-")
    src = os.path.join(out, "src")
    rels = {"se_ops/v1/reflection.proto": "grpc/reflection/v1/reflection.proto",
            "se_ops/v1alpha/reflection.proto": "grpc/reflection/v1alpha/reflection.proto"}
    for dst, rel in rels.items():
        os.makedirs(os.path.dirname(os.path.join(src, dst)), exist_ok=True)
        shutil.copy(os.path.join(GRPC_PROTO, rel), os.path.join(src, dst))
    r = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + src,
                        "--python_out=" + out, "--grpc_python_out=" + out] + list(rels),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("protoc failed: " + r.stderr)
    sys.path.insert(0, out)
    import se_ops.v1.reflection_pb2 as r1
    import se_ops.v1.reflection_pb2_grpc as r1g
    import se_ops.v1alpha.reflection_pb2 as ra
    import se_ops.v1alpha.reflection_pb2_grpc as rag

    class NS:
        pass
    _ops = NS()
    _ops.h, _ops.hg = harness.protos().health_pb2, harness.protos().health_pb2_grpc
    _ops.r1, _ops.r1g, _ops.ra, _ops.rag = r1, r1g, ra, rag
    return _ops


def watch(channel, service=""):
    """Health/Watch (the harness's health.proto has Check only)."""
    h = ops_protos().h
    fn = channel.unary_stream("/grpc.health.v1.Health/Watch",
                              request_serializer=h.HealthCheckRequest.SerializeToString,
                              response_deserializer=h.HealthCheckResponse.FromString)
    return fn(h.HealthCheckRequest(service=service))


class Watcher:
    """A Health/Watch stream read by a thread: .seen is [(t, status name)],
    .end the stream's final status code (None while open)."""

    def __init__(self, channel, service=""):
        p = ops_protos()
        self.seen, self.end, self.details = [], None, ""
        self.call = watch(channel, service)
        self.names = p.h.HealthCheckResponse.ServingStatus.Name
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for m in self.call:
                self.seen.append((time.monotonic(), self.names(m.status)))
            self.end = C.OK
        except grpc.RpcError as e:
            self.end, self.details = e.code(), e.details()

    def statuses(self):
        return [s for _, s in self.seen]

    def wait_for(self, status, after=0, timeout=30):
        return wait_until(lambda: status in self.statuses()[after:], timeout, 0.05)


def check(channel, service=""):
    p = ops_protos()
    try:
        r = p.hg.HealthStub(channel).Check(p.h.HealthCheckRequest(service=service), timeout=5)
        return p.h.HealthCheckResponse.ServingStatus.Name(r.status)
    except grpc.RpcError as e:
        return e.code().name


def scrape(port, path="/metrics"):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def parse_metrics(text):
    """{name: type} and [(name, {labels}, value)] of a text exposition."""
    types, samples = {}, []
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')
    for ln in text.splitlines():
        if ln.startswith("# TYPE "):
            _, _, name, typ = ln.split(" ", 3)
            types[name] = typ
            continue
        if not ln or ln.startswith("#"):
            continue
        m = line_re.match(ln)
        if not m:
            raise AssertionError("not an exposition line: %r" % ln)
        labels = dict(label_re.findall(m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return types, samples


def value(samples, name, **labels):
    got = [v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in labels.items())]
    if len(got) != 1:
        raise AssertionError("%s%s: %d samples" % (name, labels, len(got)))
    return got[0]


class HealthFollowsEngine(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="safeeval-ops-proxy-")
        cls.proxy = EngineProxy(os.path.join(cls.tmp, "docker.sock"))
        cls.proxy.start()
        cls.port = free_port()
        try:
            cls.d = Daemon(extra_args=daemon_args(
                make_wheelhouse(), "--docker-host", "unix://" + cls.proxy.path,
                "--docker-timeout-ms", "3000", "--health-interval-ms", "200",
                "--metrics-listen", "127.0.0.1:%d" % cls.port), timeout=60)
        except BaseException:
            cls.proxy.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.proxy.srv is None:
                cls.proxy.start()
            finish(cls.d)
        finally:
            cls.proxy.stop()
            remove_containers_of()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def engine_up(self):
        return value(parse_metrics(scrape(self.port)[2])[1], "safeeval_engine_up")

    def test_health_follows_the_engine_and_ends_watches_at_shutdown(self):
        # Catches: health SERVING while the engine is gone (the old
        # behaviour); a Watch that sends only its first state or never ends;
        # health stuck NOT_SERVING once the engine is back; unknown services
        # answered as ours.
        ch = self.d.channel
        self.assertEqual(check(ch), "SERVING")
        self.assertEqual(check(ch, SVC), "SERVING")
        self.assertEqual(check(ch, "no.such.Service"), "NOT_FOUND")
        w = Watcher(ch)
        unknown = Watcher(ch, "no.such.Service")
        self.assertTrue(w.wait_for("SERVING", timeout=10), w.seen)
        self.assertTrue(unknown.wait_for("SERVICE_UNKNOWN", timeout=10), unknown.seen)

        self.proxy.stop()
        t0 = time.monotonic()
        self.assertTrue(wait_until(lambda: check(ch) == "NOT_SERVING", 30, 0.1),
                        "health still %s 30 s after the engine stopped answering:\n%s"
                        % (check(ch), self.d.log()[-3000:]))
        flip_down = time.monotonic() - t0
        self.assertTrue(w.wait_for("NOT_SERVING", timeout=10), w.seen)
        self.assertEqual(self.engine_up(), 0)

        self.proxy.start()
        t0 = time.monotonic()
        self.assertTrue(wait_until(lambda: check(ch) == "SERVING", 30, 0.1),
                        "health still %s 30 s after the engine came back" % check(ch))
        flip_up = time.monotonic() - t0
        n = w.statuses().index("NOT_SERVING")
        self.assertTrue(w.wait_for("SERVING", after=n + 1, timeout=10), w.seen)
        self.assertEqual(self.engine_up(), 1)
        # Changes only: no status repeated back to back.
        st = w.statuses()
        self.assertFalse([a for a, b in zip(st, st[1:]) if a == b], st)
        self.assertIsNone(w.end, "the Watch ended while serving: %s %s" % (w.end, w.details))
        self.assertEqual(unknown.statuses(), ["SERVICE_UNKNOWN"])
        self.assertIn("health: NOT_SERVING", self.d.log())
        sys.stderr.write("\n[HealthFollowsEngine] NOT_SERVING %.2f s after the engine stopped, "
                         "SERVING %.2f s after it came back (probe every 200 ms)\n"
                         % (flip_down, flip_up))

        # SIGTERM: the Watch hears NOT_SERVING, then ends UNAVAILABLE.
        before = len(w.seen)
        self.assertEqual(self.d.stop(), 0, self.d.log()[-3000:])
        w.thread.join(10)
        unknown.thread.join(10)
        self.assertEqual(w.statuses()[before:], ["NOT_SERVING"], w.seen)
        self.assertEqual(w.end, C.UNAVAILABLE, w.details)
        self.assertEqual(unknown.end, C.UNAVAILABLE, unknown.details)


class HealthHungEngine(unittest.TestCase):
    def test_an_engine_that_does_not_answer_turns_health(self):
        # Catches: the probe waiting the whole --docker-timeout-ms (30 s
        # here) on an engine that accepts connections and never answers,
        # health SERVING all that time; health not back once it answers.
        tmp = tempfile.mkdtemp(prefix="safeeval-ops-hung-")
        proxy = EngineProxy(os.path.join(tmp, "docker.sock"))
        proxy.start()
        try:
            d = Daemon(extra_args=daemon_args(
                make_wheelhouse(), "--docker-host", "unix://" + proxy.path,
                "--docker-timeout-ms", "30000", "--health-interval-ms", "200"), timeout=60)
        except BaseException:
            proxy.stop()
            raise
        try:
            self.assertEqual(check(d.channel), "SERVING")
            proxy.hang = True
            t0 = time.monotonic()
            self.assertTrue(wait_until(lambda: check(d.channel) == "NOT_SERVING", 15, 0.1),
                            "health still SERVING 15 s into a hung engine")
            took = time.monotonic() - t0
            proxy.hang = False
            self.assertTrue(wait_until(lambda: check(d.channel) == "SERVING", 60, 0.2),
                            "health not SERVING once the engine answers again")
            sys.stderr.write("\n[HealthHungEngine] NOT_SERVING %.2f s into a hung engine "
                             "(--docker-timeout-ms 30000)\n" % took)
            self.assertEqual(d.stop(), 0, d.log()[-3000:])
        finally:
            proxy.hang = False
            d.stop()  # a failed check above must not leave the daemon running
            proxy.stop()
            remove_containers_of()
            shutil.rmtree(tmp, ignore_errors=True)


class HealthKick(unittest.TestCase):
    def test_a_failed_engine_call_turns_health_at_once(self):
        # Catches: health that looks at the engine only on its timer (with a
        # 10-minute interval it would say SERVING through the whole test).
        # The reaper's own engine calls are an hour apart here: one failing
        # in the quiet 0.5 s below would turn health on its own.
        tmp = tempfile.mkdtemp(prefix="safeeval-ops-kick-")
        proxy = EngineProxy(os.path.join(tmp, "docker.sock"))
        proxy.start()
        try:
            with Daemon(extra_args=daemon_args(
                    make_wheelhouse(), "--docker-host", "unix://" + proxy.path,
                    "--docker-timeout-ms", "3000", "--health-interval-ms", "600000",
                    "--reap-interval-s", "3600"),
                    timeout=60) as d:
                self.assertEqual(check(d.channel), "SERVING")
                proxy.stop()
                time.sleep(0.5)
                self.assertEqual(check(d.channel), "SERVING",
                                 "health probed on its own within 0.5 s of a 10 min interval:"
                                 "\n%s" % d.log()[-3000:])
                expect_code(lambda: d.stub.CreateSandbox(d.pb.CreateSandboxRequest(
                    python_version="3.11"), timeout=60), C.UNAVAILABLE)
                self.assertTrue(wait_until(lambda: check(d.channel) == "NOT_SERVING", 10, 0.1),
                                "a failed engine call did not turn health NOT_SERVING:\n%s"
                                % d.log()[-3000:])
                proxy.start()
        finally:
            proxy.stop()
            shutil.rmtree(tmp, ignore_errors=True)
            remove_containers_of()


class ReflectionClient:
    """A generic client: no generated code of ours, only what reflection
    answers."""

    def __init__(self, channel, alpha=False):
        p = ops_protos()
        self.pb = p.ra if alpha else p.r1
        self.stub = (p.rag if alpha else p.r1g).ServerReflectionStub(channel)

    def ask(self, **req):
        """One request on a new stream; the response."""
        out = list(self.stub.ServerReflectionInfo(
            iter([self.pb.ServerReflectionRequest(**req)]), timeout=10))
        assert len(out) == 1, out
        return out[0]

    def services(self):
        r = self.ask(list_services="")
        return [s.name for s in r.list_services_response.service]

    def pool_for(self, symbol):
        from google.protobuf import descriptor_pb2, descriptor_pool
        r = self.ask(file_containing_symbol=symbol)
        assert r.WhichOneof("message_response") == "file_descriptor_response", r
        files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                 for b in r.file_descriptor_response.file_descriptor_proto]
        pool = descriptor_pool.DescriptorPool()
        pending = files
        while pending:  # dependencies first
            left = []
            for f in pending:
                try:
                    pool.Add(f)
                except TypeError:
                    left.append(f)
            if len(left) == len(pending):
                raise AssertionError("unresolvable files: %s" % [f.name for f in left])
            pending = left
        return pool, [f.name for f in files]


def message_class(pool, name):
    from google.protobuf import message_factory
    desc = pool.FindMessageTypeByName(name)
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


class Reflection(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(extra_args=daemon_args(make_wheelhouse()), timeout=60)

    @classmethod
    def tearDownClass(cls):
        finish(cls.d)

    def test_list_and_call_without_the_proto(self):
        # Catches: reflection UNIMPLEMENTED (the old behaviour); a service
        # missing from the list; descriptors a client cannot build classes
        # from or whose messages do not match the wire (the calls below
        # would fail to parse or give empty fields).
        rc = ReflectionClient(self.d.channel)
        services = rc.services()
        for s in (SVC, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                  "grpc.reflection.v1alpha.ServerReflection"):
            self.assertIn(s, services)
        pool, names = rc.pool_for(SVC)
        self.assertEqual(names, ["safeeval/v1/sandbox.proto"])
        svc = pool.FindServiceByName(SVC)
        methods = {m.name: m for m in svc.methods}
        for m in ("CreateSandbox", "Eval", "ExecuteFile", "DestroySandbox", "GetSandbox",
                  "ListSandboxes"):
            self.assertIn(m, methods)

        def call(name, **fields):
            m = methods[name]
            req_cls = message_class(pool, m.input_type.full_name)
            resp_cls = message_class(pool, m.output_type.full_name)
            fn = self.d.channel.unary_unary("/%s/%s" % (SVC, name),
                                            request_serializer=req_cls.SerializeToString,
                                            response_deserializer=resp_cls.FromString)
            return fn(req_cls(**fields), timeout=600)

        sb = call("CreateSandbox", python_version="3.11").sandbox
        try:
            self.assertTrue(sb.id)
            r = call("Eval", sandbox_id=sb.id, code="print(6 * 7)").result
            exited = pool.FindEnumTypeByName("safeeval.v1.ExitReason").values_by_name[
                "EXIT_REASON_EXITED"].number
            self.assertEqual((r.reason, r.exit_code, r.stdout), (exited, 0, b"42\n"), r)
            self.assertIn(sb.id, [s.id for s in call("ListSandboxes").sandboxes])
        finally:
            call("DestroySandbox", sandbox_id=sb.id)
        expect_code(lambda: call("GetSandbox", sandbox_id=sb.id), C.NOT_FOUND)

    def test_files_symbols_errors_and_v1alpha(self):
        # Catches: file_by_filename or nested symbols not indexed; errors
        # answered as an empty success or by ending the stream; v1alpha
        # (what older grpcurl and Postman use) missing.
        rc = ReflectionClient(self.d.channel)
        r = rc.ask(file_by_filename="grpc/health/v1/health.proto")
        self.assertEqual(r.WhichOneof("message_response"), "file_descriptor_response")
        self.assertEqual(r.original_request.file_by_filename, "grpc/health/v1/health.proto")
        for sym in ("safeeval.v1.EvalRequest", "safeeval.v1.SandboxService.Eval",
                    "safeeval.v1.ExitReason", "grpc.health.v1.HealthCheckResponse.ServingStatus"):
            pool, _ = rc.pool_for(sym)
        for req, code in ((dict(file_containing_symbol="safeeval.v1.Nope"), 5),
                          (dict(file_by_filename="nope.proto"), 5),
                          (dict(host="x"), 3)):
            r = rc.ask(**req)
            self.assertEqual(r.WhichOneof("message_response"), "error_response", r)
            self.assertEqual(r.error_response.error_code, code, r)
        alpha = ReflectionClient(self.d.channel, alpha=True)
        self.assertIn(SVC, alpha.services())
        pool, _ = alpha.pool_for("safeeval.v1.SandboxService")
        self.assertIsNotNone(pool.FindMessageTypeByName("safeeval.v1.CreateSandboxRequest"))
        # Several requests on one stream, answered in order.
        p = ops_protos()
        reqs = [p.r1.ServerReflectionRequest(list_services=""),
                p.r1.ServerReflectionRequest(file_containing_symbol=SVC),
                p.r1.ServerReflectionRequest(file_by_filename="nope.proto")]
        out = list(rc.stub.ServerReflectionInfo(iter(reqs), timeout=10))
        self.assertEqual([o.WhichOneof("message_response") for o in out],
                         ["list_services_response", "file_descriptor_response",
                          "error_response"])


class MetricsAndLogs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.d = Daemon(extra_args=daemon_args(
            make_wheelhouse(), "--metrics-listen", "127.0.0.1:%d" % cls.port, "--log-json",
            "--log-level", "info"), timeout=60)
        cls.pb = cls.d.pb

    @classmethod
    def tearDownClass(cls):
        finish(cls.d)

    def test_metrics_count_the_calls_made(self):
        # Catches: counters that do not move or count the wrong method/code;
        # runs not counted by reason; histograms whose +Inf bucket and count
        # disagree; gauges that do not come back to 0 after a destroy; the
        # endpoint answering anything but GET /metrics.
        pb, stub = self.pb, self.d.stub
        types, s0 = parse_metrics(scrape(self.port)[2])

        def rpcs(samples, method, code):
            got = [v for n, l, v in samples if n == "safeeval_rpc_handled_total" and
                   l.get("service") == SVC and l.get("method") == method and
                   l.get("code") == code]
            return got[0] if got else 0

        base = {k: rpcs(s0, *k) for k in (("ListSandboxes", "OK"), ("GetSandbox", "NOT_FOUND"),
                                          ("CreateSandbox", "OK"), ("Eval", "OK"),
                                          ("DestroySandbox", "OK"))}
        runs0 = {r: value(s0, "safeeval_runs_total", reason=r)
                 for r in ("exited", "wall_timeout")}
        n_run0 = value(s0, "safeeval_run_duration_seconds_count")
        for _ in range(2):
            stub.ListSandboxes(pb.ListSandboxesRequest(), timeout=10)
        expect_code(lambda: stub.GetSandbox(pb.GetSandboxRequest(sandbox_id="nope"), timeout=10),
                    C.NOT_FOUND)
        sb = stub.CreateSandbox(pb.CreateSandboxRequest(python_version="3.11"),
                                timeout=600).sandbox
        try:
            assert_exited_ok(self, pb, stub.Eval(pb.EvalRequest(sandbox_id=sb.id, code="print(1)"),
                                                 timeout=60).result, b"1\n")
            r = stub.Eval(pb.EvalRequest(sandbox_id=sb.id, code="import sys; sys.exit(3)"),
                          timeout=60).result
            self.assertEqual((r.reason, r.exit_code), (pb.EXIT_REASON_EXITED, 3))
            r = stub.Eval(pb.EvalRequest(sandbox_id=sb.id, code="import time; time.sleep(30)",
                                         limits=pb.Limits(wall_time_ms=500)), timeout=60).result
            self.assertEqual(r.reason, pb.EXIT_REASON_WALL_TIMEOUT)
            status, ctype, text = scrape(self.port)
            _, live = parse_metrics(text)
            self.assertEqual(value(live, "safeeval_sandboxes"), 1)
            self.assertGreaterEqual(value(live, "safeeval_workers"), 1)
        finally:
            stub.DestroySandbox(pb.DestroySandboxRequest(sandbox_id=sb.id), timeout=60)

        def settled():
            _, s = parse_metrics(scrape(self.port)[2])
            return (value(s, "safeeval_sandboxes"), value(s, "safeeval_workers")) == (0, 0) and s
        s1 = wait_until(settled, 10, 0.1)
        self.assertTrue(s1, "gauges not back to 0 after the destroy:\n" + scrape(self.port)[2])
        types, _ = parse_metrics(scrape(self.port)[2])
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        want = {("ListSandboxes", "OK"): 2, ("GetSandbox", "NOT_FOUND"): 1,
                ("CreateSandbox", "OK"): 1, ("Eval", "OK"): 3, ("DestroySandbox", "OK"): 1}
        for k, n in want.items():
            self.assertEqual(rpcs(s1, *k) - base[k], n, k)
        self.assertEqual(value(s1, "safeeval_runs_total", reason="exited") - runs0["exited"], 2)
        self.assertEqual(value(s1, "safeeval_runs_total", reason="wall_timeout")
                         - runs0["wall_timeout"], 1)
        self.assertEqual(value(s1, "safeeval_run_duration_seconds_count") - n_run0, 3)
        for h in ("safeeval_run_duration_seconds", "safeeval_run_queue_wait_seconds",
                  "safeeval_image_build_duration_seconds"):
            self.assertEqual(types.get(h), "histogram", h)
            buckets = [(l["le"], v) for n, l, v in s1 if n == h + "_bucket"]
            counts = [v for _, v in buckets]
            self.assertEqual(counts, sorted(counts), "buckets not cumulative: %s" % buckets)
            self.assertEqual(buckets[-1][0], "+Inf")
            self.assertEqual(buckets[-1][1], value(s1, h + "_count"), h)
        # The wall-timeout run took at least its 0.5 s.
        self.assertGreaterEqual(value(s1, "safeeval_run_duration_seconds_sum"), 0.5)
        builds = sum(v for n, l, v in s1 if n == "safeeval_image_builds_total")
        self.assertEqual(builds, value(s1, "safeeval_image_build_duration_seconds_count"))
        for name, typ in (("safeeval_rpc_handled_total", "counter"),
                          ("safeeval_runs_total", "counter"),
                          ("safeeval_image_builds_total", "counter"),
                          ("safeeval_engine_errors_total", "counter"),
                          ("safeeval_sandboxes", "gauge"), ("safeeval_workers", "gauge"),
                          ("safeeval_engine_up", "gauge"),
                          ("process_resident_memory_bytes", "gauge")):
            self.assertEqual(types.get(name), typ, name)
        self.assertEqual(value(s1, "safeeval_engine_errors_total"), 0)
        self.assertEqual(value(s1, "safeeval_engine_up"), 1)
        self.assertGreater(value(s1, "process_resident_memory_bytes"), 1 << 20)
        # Health checks (the harness's) are counted too, under their service.
        self.assertGreaterEqual(value(s1, "safeeval_rpc_handled_total",
                                      service="grpc.health.v1.Health", method="Check",
                                      code="OK"), 1)
        for path, method, code in (("/", "GET", 404), ("/metrics", "POST", 405)):
            req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path),
                                         method=method, data=b"x" if method == "POST" else None)
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(req, timeout=10)
            self.assertEqual(cm.exception.code, code, path)

    def test_json_call_lines_and_request_ids(self):
        # Catches: call lines with their data inside the message text (the
        # old behaviour); a request id not echoed or not the client's; no
        # version in the trailing metadata; a version that differs from
        # the one /metrics reports.
        pb, stub = self.pb, self.d.stub
        try:
            stub.GetSandbox(pb.GetSandboxRequest(sandbox_id="nosuchsandbox1"), timeout=10,
                            metadata=[("x-request-id", "req-ops-42")])
            self.fail("GetSandbox of an unknown id succeeded")
        except grpc.RpcError as e:
            self.assertEqual(e.code(), C.NOT_FOUND)
            trailer = dict(e.trailing_metadata())
        self.assertEqual(trailer.get("x-request-id"), "req-ops-42")
        version = trailer.get("safeeval-version")
        self.assertTrue(version)
        _, samples = parse_metrics(scrape(self.port)[2])
        self.assertEqual([l["version"] for n, l, v in samples if n == "safeeval_build_info"],
                         [version])
        # No id (or one that is not printable) sent: a fresh one.
        _, call = stub.ListSandboxes.with_call(pb.ListSandboxesRequest(), timeout=10,
                                                metadata=[("x-request-id", "x" * 65)])
        generated = dict(call.trailing_metadata()).get("x-request-id", "")
        self.assertRegex(generated, r"^[0-9a-f]{32}$")

        def line_of(rid):
            for ln in self.d.log().splitlines():
                try:
                    o = json.loads(ln)
                except ValueError:
                    self.fail("not a JSON line with --log-json: %r" % ln)
                if o.get("request_id") == rid:
                    return o
            return None
        o = wait_until(lambda: line_of("req-ops-42"), 10, 0.1)
        self.assertTrue(o, "no log line with request_id req-ops-42:\n" + self.d.log()[-3000:])
        self.assertEqual(o["method"], "/%s/GetSandbox" % SVC)
        self.assertEqual(o["code"], "NOT_FOUND")
        self.assertIsInstance(o["duration_ms"], (int, float))
        self.assertGreaterEqual(o["duration_ms"], 0)
        self.assertEqual(o["sandbox"], "nosuchsandbox1")
        self.assertTrue(o["peer"].startswith("unix:"), o)
        self.assertEqual(o["level"], "info")
        o = wait_until(lambda: line_of(generated), 10, 0.1)
        self.assertTrue(o)
        self.assertEqual((o["method"], o["code"], o["sandbox"]),
                         ("/%s/ListSandboxes" % SVC, "OK", ""))

    def test_watch_streams_are_bounded(self):
        # Catches: one thread per Watch without a bound (a client could open
        # thousands); watchers that never end when their client leaves (the
        # slots would not come back).
        chans = [grpc.insecure_channel(self.d.address) for _ in range(2)]
        try:
            ws = [Watcher(chans[i % 2]) for i in range(16)]
            self.assertTrue(wait_until(lambda: all(w.statuses() == ["SERVING"] for w in ws),
                                       20, 0.05), [w.seen for w in ws])
            extra = Watcher(self.d.channel)
            extra.thread.join(10)
            self.assertEqual(extra.end, C.RESOURCE_EXHAUSTED, extra.details)
            for w in ws:
                w.call.cancel()
            # Their threads see the cancel within a poll; the slots come back.
            late = wait_until(lambda: (lambda w: w.wait_for("SERVING", timeout=2) and w)(
                Watcher(self.d.channel)), 10, 0.2)
            self.assertTrue(late, "no Watch slot came back after 16 cancels")
            late.call.cancel()
        finally:
            for c in chans:
                c.close()


class TlsReload(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="safeeval-ops-tls-")
        make_pki(cls.dir, "a")
        make_pki(cls.dir, "b")
        cls.pb = harness.protos().sandbox_pb2

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def install(self, cert, key):
        """Replaces live.pem/live.key as an operator would (rename over)."""
        for src, dst in ((cert, "live.pem"), (key, "live.key")):
            shutil.copy(self.path(src), self.path(dst + ".new"))
            os.rename(self.path(dst + ".new"), self.path(dst))

    def channel(self, ca):
        # A fresh connection each time: no subchannel reuse across tests.
        return grpc.secure_channel("127.0.0.1:%d" % self.port,
                                   grpc.ssl_channel_credentials(root_certificates=self.read(ca)),
                                   options=[("grpc.use_local_subchannel_pool", 1)])

    def works(self, ca):
        ch = self.channel(ca)
        try:
            harness.protos().sandbox_pb2_grpc.SandboxServiceStub(ch).ListSandboxes(
                self.pb.ListSandboxesRequest(), timeout=5)
            return True
        except grpc.RpcError:
            return False
        finally:
            ch.close()

    def hup(self, d, expect):
        n = d.log().count(expect)
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: d.log().count(expect) > n, 10, 0.05),
                        "no %r in the log after SIGHUP:\n%s" % (expect, d.log()[-2000:]))

    def test_sighup_reloads_and_keeps_a_good_certificate(self):
        # Catches: SIGHUP ignored (the B-only client would fail); a reload
        # that drops open connections (the Watch would end); a broken file
        # taken (every new handshake would fail) or kept without a word.
        self.port = free_port()
        self.install("asrv.pem", "asrv.key")
        creds = grpc.ssl_channel_credentials(root_certificates=self.read("aca.pem"))
        d = RawDaemon(["--listen", "127.0.0.1:%d" % self.port, "--instance", harness.INSTANCE,
                       "--tls-cert", self.path("live.pem"), "--tls-key", self.path("live.key")],
                      "127.0.0.1:%d" % self.port, creds)
        try:
            self.assertTrue(self.works("aca.pem"))
            self.assertFalse(self.works("bca.pem"))
            w = Watcher(d.channel)
            self.assertTrue(w.wait_for("SERVING", timeout=10), w.seen)

            self.install("bsrv.pem", "bsrv.key")
            self.hup(d, "SIGHUP: reloaded")
            self.assertTrue(self.works("bca.pem"), "a client trusting only the new CA failed")
            self.assertFalse(self.works("aca.pem"), "the old certificate still served")
            # The connection made before the reload goes on.
            self.assertIsNone(w.end, "%s %s" % (w.end, w.details))
            d.stub.ListSandboxes(self.pb.ListSandboxesRequest(), timeout=5)

            # A broken certificate file: kept B, and said why.
            with open(self.path("live.pem"), "w") as f:
                f.write("-----BEGIN CERTIFICATE-----\nnot base64\n")
            self.hup(d, "SIGHUP: kept the TLS certificate in use")
            self.assertIn("no PEM certificate", d.log())
            self.assertTrue(self.works("bca.pem"), "a broken file replaced the certificate")
            # A key of another certificate: kept B.
            self.install("bsrv.pem", "asrv.key")
            self.hup(d, "SIGHUP: kept the TLS certificate in use")
            self.assertIn("is not the key of the certificate", d.log())
            self.assertTrue(self.works("bca.pem"))
            self.assertIsNone(w.end, "%s %s" % (w.end, w.details))
            w.call.cancel()
        finally:
            d.close()

    def test_sighup_without_tls_is_harmless(self):
        with Daemon() as d:
            d.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_until(lambda: "SIGHUP: no TLS" in d.log(), 10, 0.05), d.log())
            d.stub.ListSandboxes(d.pb.ListSandboxesRequest(), timeout=5)


class Refusals(unittest.TestCase):
    def test_metrics_off_the_loopback_needs_the_flag(self):
        # Catches: metrics (unauthenticated) served on every interface by a
        # typo; the flag not honoured.
        port = free_port()
        r = run_daemon(["--metrics-listen", "0.0.0.0:%d" % port, "--instance", harness.INSTANCE])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--metrics-allow-remote", r.stderr)
        with Daemon(extra_args=["--metrics-listen", "0.0.0.0:%d" % port,
                                "--metrics-allow-remote"]) as d:
            status, _, text = scrape(port)
            self.assertEqual(status, 200)
            self.assertIn("safeeval_build_info", text)
            d.stub.ListSandboxes(d.pb.ListSandboxesRequest(), timeout=5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
