// The Node SDK against a real safeevald (started by run_ctest.py, which sets
// SAFEEVAL_TARGET and SAFEEVAL_TEST_MAX_REQUEST). Tests of issue 11's RPCs
// skip when, and only when, the server answers UNIMPLEMENTED for them.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFile } = require('child_process');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const safeeval = require('safeeval');

const { SafeEval } = safeeval;
const VERSION = '3.11'; // the old tl;dr said 3.8: this server builds 3.11 and 3.13
const MAX_REQUEST = Number(process.env.SAFEEVAL_TEST_MAX_REQUEST || 0);
const ids = async () => (await safeeval.listSandboxes()).map((s) => s.id);
const run = (file) => new Promise((resolve) => {
  execFile(process.execPath, [file], { timeout: 600000 }, (err, stdout, stderr) =>
    resolve({ code: err ? err.code : 0, stdout, stderr }));
});
const skipReason = (method, why = '') => `server answers UNIMPLEMENTED for ${method}${why} ` +
  '(the server side of issue 11 is not in this build)';

let sb;
before(async () => {
  assert.ok(process.env.SAFEEVAL_TARGET, 'SAFEEVAL_TARGET must name the test daemon');
  sb = await SafeEval.create({ version: VERSION, modules: ['numpy'] });
});
after(async () => {
  await sb.close();
  assert.ok(!(await ids()).includes(sb.id));
});

test('the tl;dr in five lines', async () => {
  const r = await run(path.join(__dirname, 'fixtures', 'tldr.mjs'));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Hello World\n\n[3, 5, 7]\n\n');
});

test('a sandbox never closed is destroyed when node runs out of work', async () => {
  const r = await run(path.join(__dirname, 'fixtures', 'forgot_close.js'));
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  assert.match(id, /^[A-Za-z0-9][A-Za-z0-9_.-]{7,63}$/);
  assert.ok(!(await ids()).includes(id), `sandbox ${id} outlived its process`);
});

test('the version asked for is the version given (snake_case fields are kept)', async () => {
  await SafeEval.with({ version: '3.13', limits: { wallTime: 20 }, labels: { who: 'node' } },
    async (s) => {
      assert.match(s.sandbox.pythonVersion, /^3\.13\./);
      assert.equal(s.sandbox.limits.wallTime, 20);
      assert.deepEqual(s.sandbox.labels, { who: 'node' });
      assert.equal((await s.eval('import sys; print(sys.version_info[:2])')).stdout, '(3, 13)\n');
    });
});

test('every result field', async () => {
  const code = 'import os, sys\n' +
    'print("out", sys.stdin.read(), sys.argv[1:], os.environ["GREETING"], open("in/d.txt").read())\n' +
    'print("err", file=sys.stderr)\n' +
    'x = bytearray(20 * 1024 * 1024)\n';
  const r = await sb.eval(code, { stdin: 'hi', args: ['a', 'b'], env: { GREETING: 'hello' },
    files: { 'in/d.txt': Buffer.from('42') } });
  assert.deepEqual(r.args, ['python3', '-c', code, 'a', 'b']);
  assert.equal(r.returncode, 0);
  assert.equal(r.stdout, "out hi ['a', 'b'] hello 42\n");
  assert.equal(r.stderr, 'err\n');
  assert.equal(r.reason, 'exited');
  assert.equal(r.signal, 0);
  assert.deepEqual([r.truncated, r.stdoutTruncated, r.stderrTruncated], [false, false, false]);
  assert.deepEqual([r.stdoutBytes, r.stderrBytes], [r.stdout.length, 4]);
  assert.ok(r.wallTime > 0, `wallTime ${r.wallTime}`);
  assert.ok(r.cpuTime > 0 && r.cpuTime <= r.wallTime + 1, `cpuTime ${r.cpuTime}`);
  assert.ok(r.maxRss >= 20 * 1024 * 1024, `maxRss ${r.maxRss}`);
  assert.deepEqual(r.files, {});
  assert.equal(r.filesTruncated, false);
});

test('Buffers on request; bad UTF-8 replaced in text', async () => {
  const code = 'import sys; sys.stdout.buffer.write(b"\\xff ok"); sys.stderr.write("\\u00e9")';
  const b = await sb.eval(code, { encoding: null });
  assert.ok(b.stdout.equals(Buffer.from([0xff, 0x20, 0x6f, 0x6b])));
  assert.ok(b.stderr.equals(Buffer.from('\u00e9')));
  assert.equal((await sb.eval(code)).stdout, '\ufffd ok');
});

test('limits are reasons, not errors', async () => {
  let r = await sb.eval('import sys; sys.exit(3)');
  assert.deepEqual([r.returncode, r.reason], [3, 'exited']);
  r = await sb.eval('import os; os.kill(os.getpid(), 9)');
  assert.deepEqual([r.returncode, r.reason, r.signal], [-9, 'signaled', 9]);
  r = await sb.eval('import time; time.sleep(30)', { timeLimit: 0.5 });
  assert.equal(r.reason, 'wall_timeout');
  assert.ok(r.returncode < 0 && r.signal > 0 && r.wallTime >= 0.45);
  r = await sb.eval('x = bytearray(400 * 1024 * 1024)', { limits: { memory: 64 * 1024 * 1024 } });
  assert.equal(r.reason, 'memory_limit');
  r = await sb.eval('while True: pass', { limits: { cpuTime: 0.3 } });
  assert.equal(r.reason, 'cpu_timeout');
  r = await sb.eval('print("x" * 5000, end="")', { limits: { maxOutput: 1024 } });
  assert.deepEqual([r.stdoutTruncated, r.truncated, r.stdout.length, r.stdoutBytes],
    [true, true, 1024, 5000]);
  r = await sb.eval('open("big", "wb").write(b"x" * 100000)', { limits: { maxFile: 4096 } });
  assert.equal(r.reason, 'file_size_limit');
});

test('executeFile: a path, content, a missing file', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safeeval-node-'));
  const p = path.join(dir, 'job.py');
  fs.writeFileSync(p, 'import sys; print(sys.argv[0].endswith("job.py"), sys.argv[1:])');
  let r = await sb.executeFile(p, { args: ['4'] });
  assert.equal(r.stdout, "True ['4']\n");
  assert.deepEqual(r.args, ['python3', 'job.py', '4']);
  r = await sb.executeFile('named.py', { content: 'print(__file__.endswith("named.py"))' });
  assert.equal(r.stdout, 'True\n');
  await assert.rejects(sb.executeFile(path.join(dir, 'missing.py')), safeeval.InvalidArgument);
  fs.rmSync(dir, { recursive: true });
});

test('errors: InvalidArgument, SandboxNotFound, ResourceExhausted, DeadlineExceeded', async () => {
  await assert.rejects(sb.eval('pass', { files: { '../escape': 'x' } }), (e) =>
    e instanceof safeeval.InvalidArgument && e instanceof safeeval.SafeEvalError &&
    e.code === 'INVALID_ARGUMENT' && e.grpcCode === 3 && /files/.test(e.details));
  await assert.rejects(sb.eval('pass', { timeLimit: -1 }), safeeval.InvalidArgument);
  await assert.rejects(sb.eval('pass', { timelimit: 1 }), /unknown option timelimit/);
  await assert.rejects(SafeEval.create({ runner: 'constructor' }), safeeval.InvalidArgument);
  await assert.rejects(SafeEval.create({ idleTimeout: -1 }), safeeval.InvalidArgument);
  await assert.rejects(sb.eval('pass', { limits: null, args: 'a' }), /args must be an array/);
  assert.ok(MAX_REQUEST > 0);
  await assert.rejects(sb.eval('#'.repeat(2 * MAX_REQUEST)), (e) =>
    e instanceof safeeval.ResourceExhausted && e.code === 'RESOURCE_EXHAUSTED');
  await assert.rejects(sb.eval('import time; time.sleep(10)', { timeout: 0.5 }),
    safeeval.DeadlineExceeded);
  const s = await SafeEval.create({ version: VERSION, modules: ['numpy'] });
  const other = await SafeEval.create({ version: VERSION, modules: ['numpy'] });
  // destroy s behind its back, through another connection
  await new Promise((resolve, reject) => other._c.client.DestroySandbox({ sandbox_id: s.id },
    (err) => (err ? reject(err) : resolve())));
  await other.close();
  await assert.rejects(s.eval('pass'), (e) => e instanceof safeeval.SandboxNotFound &&
    e.code === 'NOT_FOUND');
  await s.close(); // already gone: not an error
  await assert.rejects(s.eval('pass'), /closed/);
});

test('errors: Unavailable, VersionNotAvailable', async () => {
  await assert.rejects(SafeEval.create({ target: 'unix:/nonexistent/safeeval.sock',
    createTimeout: 10 }), safeeval.Unavailable);
  let info = null;
  try {
    info = await safeeval.serverInfo();
  } catch (e) {
    assert.ok(e instanceof safeeval.Unimplemented, String(e));
  }
  await assert.rejects(SafeEval.create({ version: '3.8', modules: ['numpy'] }), (e) => {
    assert.ok(e instanceof safeeval.VersionNotAvailable && e instanceof safeeval.FailedPrecondition);
    assert.equal(e.version, '3.8');
    if (info) {
      assert.ok(e.available.includes('3.11') && e.available.includes('3.13'));
      assert.match(e.message, /3\.11.*3\.13|3\.13.*3\.11/);
    } else {
      assert.equal(e.available, null);
      assert.match(e.message, /cannot list its versions/);
    }
    return true;
  });
});

test('every status code has its class, and the token goes as a bearer', async () => {
  const def = protoLoader.loadSync('safeeval/v1/sandbox.proto', { ...safeeval.LOADER_OPTIONS,
    includeDirs: [path.join(__dirname, '..', '..', '..', 'proto')] });
  const svc = grpc.loadPackageDefinition(def).safeeval.v1.SandboxService.service;
  let code = grpc.status.OK;
  const seen = [];
  const handlers = {};
  for (const name of Object.keys(svc)) {
    handlers[name] = (call, cb) => {
      seen.push(call.metadata.get('authorization')[0]);
      const err = { code, details: `status server says ${grpc.status[code]}` };
      if (cb) cb(err); else call.destroy(err);
    };
  }
  const server = new grpc.Server();
  server.addService(svc, handlers);
  const port = await new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0',
    grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const target = `127.0.0.1:${port}`;
  const cases = [['INVALID_ARGUMENT', safeeval.InvalidArgument],
    ['NOT_FOUND', safeeval.SandboxNotFound], ['RESOURCE_EXHAUSTED', safeeval.ResourceExhausted],
    ['FAILED_PRECONDITION', safeeval.FailedPrecondition], ['UNAVAILABLE', safeeval.Unavailable],
    ['DEADLINE_EXCEEDED', safeeval.DeadlineExceeded], ['ABORTED', safeeval.Aborted],
    ['PERMISSION_DENIED', safeeval.PermissionDenied],
    ['UNAUTHENTICATED', safeeval.Unauthenticated], ['UNIMPLEMENTED', safeeval.Unimplemented],
    ['CANCELLED', safeeval.Cancelled], ['INTERNAL', safeeval.Internal],
    ['DATA_LOSS', safeeval.SafeEvalError]];
  try {
    for (const [name, C] of cases) {
      code = grpc.status[name];
      await assert.rejects(SafeEval.create({ target, token: 't0ken' }), (e) => {
        assert.equal(e.constructor, C, `${name}: ${e.constructor.name}`);
        assert.equal(e.code, name);
        assert.equal(e.details, `status server says ${name}`);
        assert.equal(e.message, `${name}: status server says ${name}`);
        return true;
      });
    }
    assert.ok(seen.length >= cases.length && seen.every((h) => h === 'Bearer t0ken'));
    process.env.SAFEEVAL_TOKEN = 'from-env';
    await assert.rejects(SafeEval.create({ target }));
    assert.equal(seen[seen.length - 1], 'Bearer from-env');
  } finally {
    delete process.env.SAFEEVAL_TOKEN;
    server.forceShutdown();
  }
});

test('SafeEval.with destroys the sandbox when the body throws', async () => {
  let id;
  await assert.rejects(SafeEval.with({ version: VERSION, modules: ['numpy'] }, async (s) => {
    id = s.id;
    assert.ok((await ids()).includes(id));
    throw new Error('boom');
  }), /boom/);
  assert.ok(!(await ids()).includes(id));
});

// -- issue 11: streaming, files back, server info, create progress -------------

const STREAM_CODE = 'import sys, time\nfor i in range(10):\n' +
  '    print("out %d" % i, flush=True)\n' +
  '    print("err %d" % i, file=sys.stderr, flush=True)\n' +
  '    time.sleep(0.3)\n';
const lines = (tag) => Array.from({ length: 10 }, (_, i) => `${tag} ${i}\n`).join('');

test('stream: order, totals, the first chunk before the run ends', async (t) => {
  const t0 = Date.now();
  const s = sb.stream(STREAM_CODE);
  const chunks = [];
  let first = null;
  try {
    for await (const c of s) {
      if (first === null) first = (Date.now() - t0) / 1000;
      chunks.push(c);
    }
  } catch (e) {
    if (e instanceof safeeval.Unimplemented) return t.skip(skipReason('EvalStream'));
    throw e;
  }
  const total = (Date.now() - t0) / 1000;
  const out = chunks.filter((c) => c.stream === 'stdout').map((c) => c.data).join('');
  const err = chunks.filter((c) => c.stream === 'stderr').map((c) => c.data).join('');
  assert.equal(out, lines('out'));
  assert.equal(err, lines('err'));
  assert.equal(s.result.reason, 'exited');
  assert.deepEqual([s.result.stdout, s.result.stderr], [out, err]);
  assert.deepEqual([s.result.stdoutBytes, s.result.stderrBytes], [out.length, err.length]);
  assert.ok(total >= 2.7 && first < total - 1.5, `first chunk at ${first} s of ${total} s`);
  console.log(`stream: first chunk after ${first} s of ${total} s`);
});

test('streamFile: Buffers; leaving the loop cancels the run', async (t) => {
  const s = sb.streamFile('s.py', { content: 'import sys; sys.stdout.buffer.write(b"\\xff")',
    encoding: null });
  const got = [];
  try {
    for await (const c of s) got.push(c);
  } catch (e) {
    if (e instanceof safeeval.Unimplemented) return t.skip(skipReason('ExecuteFileStream'));
    throw e;
  }
  assert.deepEqual(got, [{ stream: 'stdout', data: Buffer.from([0xff]) }]);
  assert.deepEqual(s.result.args, ['python3', 's.py']);
  // eslint-disable-next-line no-unused-vars
  for await (const c of sb.stream('import time\nwhile True: print("x", flush=True); time.sleep(0.1)')) {
    break;
  }
  assert.equal((await sb.eval('print("after")')).stdout, 'after\n');
});

test('stream: text split across chunks comes out whole', async (t) => {
  // 150,000 bytes of 3-byte characters: more than two 64 KiB chunks.
  const s = sb.stream('import sys; sys.stdout.write("\\u20ac" * 50000)');
  const chunks = [];
  try {
    for await (const c of s) chunks.push(c);
  } catch (e) {
    if (e instanceof safeeval.Unimplemented) return t.skip(skipReason('EvalStream'));
    throw e;
  }
  assert.ok(chunks.length >= 2, `${chunks.length} chunks`);
  assert.equal(chunks.map((c) => c.data).join(''), '\u20ac'.repeat(50000));
  assert.equal(s.result.stdoutBytes, 150000);
});

async function serverInfoOrSkip(t, why = '') {
  try {
    return await safeeval.serverInfo();
  } catch (e) {
    if (e instanceof safeeval.Unimplemented) {
      t.skip(skipReason('GetServerInfo', why));
      return null;
    }
    throw e;
  }
}

test('collect: binary, nested, symlinks not followed, caps', async (t) => {
  if (!(await serverInfoOrSkip(t, ', so `collect` is ignored by this server'))) return;
  const code = 'import os\nos.makedirs("out/deep/er", exist_ok=True)\n' +
    'open("out/bin.dat", "wb").write(bytes(range(256)))\n' +
    'open("out/deep/er/n.csv", "w").write("a,b\\n1,2\\n")\n' +
    'os.symlink("/etc/passwd", "out/passwd.csv")\nos.symlink("/etc", "out/etc")\n';
  let r = await sb.eval(code, { collect: ['out/bin.dat', 'out/deep/*/*.csv', 'out/*.csv', 'out/etc'] });
  assert.equal(r.returncode, 0, r.stderr);
  assert.deepEqual(Object.keys(r.files), ['out/bin.dat', 'out/deep/er/n.csv']);
  assert.ok(r.files['out/bin.dat'].equals(Buffer.from([...Array(256).keys()])));
  assert.equal(r.files['out/deep/er/n.csv'].toString(), 'a,b\n1,2\n');
  assert.equal(r.filesTruncated, false);
  const five = 'for i in range(5): open("f%d" % i, "wb").write(b"x" * 1000)';
  r = await sb.eval(five, { collect: ['f*'], limits: { maxCollectFiles: 2 } });
  assert.deepEqual([Object.keys(r.files).length, r.filesTruncated], [2, true]);
  r = await sb.eval(five, { collect: ['f*'], limits: { maxCollectBytes: 2500 } });
  assert.ok(r.filesTruncated);
  assert.ok(Object.values(r.files).reduce((n, b) => n + b.length, 0) <= 2500);
});

test('serverInfo', async (t) => {
  const i = await serverInfoOrSkip(t);
  if (!i) return;
  assert.equal(i.apiVersion, 'safeeval.v1');
  assert.ok(i.pythonVersions.includes('3.11') && i.pythonVersions.includes('3.13'));
  assert.ok(i.pythonVersions.includes(i.defaultPythonVersion));
  assert.ok(i.defaultLimits.wallTime > 0 && i.defaultLimits.wallTime <= i.maxLimits.wallTime);
  assert.ok(i.maxConcurrentRuns >= 1 && i.maxSandboxes >= 1);
});

test('create with progress', async (t) => {
  const got = [];
  // A server without CreateSandboxStream creates without progress: probe it raw.
  const probe = sb._c.stream('CreateSandboxStream', { python_version: '3.11\0' }, 10);
  try {
    for await (const ev of probe) void ev; // eslint-disable-line no-unused-vars
  } catch (e) {
    if (e.code === grpc.status.UNIMPLEMENTED) return t.skip(skipReason('CreateSandboxStream'));
  }
  await SafeEval.with({ version: VERSION, modules: ['numpy'], onProgress: (l) => got.push(l) },
    async (s) => assert.equal((await s.eval('print(1)')).stdout, '1\n'));
  assert.ok(got.every((l) => typeof l === 'string'));
});
