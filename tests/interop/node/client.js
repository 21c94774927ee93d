#!/usr/bin/env node
// Interop: a Node client (@grpc/grpc-js + @grpc/proto-loader, the proto
// loaded at run time from proto/safeeval/v1/sandbox.proto) runs the whole
// sandbox cycle of ../cycle.json against a running safeevald and checks every
// field it reads. Usage: node client.js SOCKET_PATH   (exit 0 = all passed)
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const SOURCE_DIR = process.env.SAFEEVAL_SOURCE_DIR || path.resolve(__dirname, '..', '..', '..');
const FIXTURE = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'cycle.json'), 'utf8'));
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{7,63}$/;
const CREATE_TIMEOUT_MS = 900 * 1000;
const RUN_TIMEOUT_MS = 60 * 1000;
const LIMIT_FIELDS = ['wall_time_ms', 'cpu_time_ms', 'memory_bytes', 'max_processes',
  'max_output_bytes', 'max_file_bytes'];

const failures = [];

function check(cond, what) {
  console.log((cond ? 'ok   ' : 'FAIL ') + what);
  if (!cond) failures.push(what);
  return cond;
}

function show(v) {
  if (typeof v === 'bigint') return v.toString();
  return Buffer.isBuffer(v) ? JSON.stringify(v.toString('latin1')) : JSON.stringify(v);
}

function checkEq(got, want, what) {
  let same;
  if (Buffer.isBuffer(got) && Buffer.isBuffer(want)) same = got.equals(want);
  else if (typeof got === 'bigint' || typeof want === 'bigint') same = got === want;
  else same = JSON.stringify(got) === JSON.stringify(want);
  return check(same, `${what}: got ${show(got)}, want ${show(want)}`);
}

// 64-bit fields arrive as decimal strings (longs: String).
function big(v) {
  return BigInt(v);
}

function call(client, method, req, timeoutMs) {
  return new Promise((resolve, reject) => {
    client[method](req, { deadline: Date.now() + timeoutMs }, (err, resp) => {
      if (err) reject(err); else resolve(resp);
    });
  });
}

async function expectCode(promise, code, what) {
  try {
    await promise;
  } catch (e) {
    return checkEq(grpc.status[e.code], grpc.status[code], what);
  }
  return check(false, `${what}: succeeded, want ${grpc.status[code]}`);
}

// A JSON text with sorted keys at every level, Buffers as base64.
function canon(v) {
  if (Buffer.isBuffer(v)) return JSON.stringify(v.toString('base64'));
  if (Array.isArray(v)) return '[' + v.map(canon).join(',') + ']';
  if (v !== null && typeof v === 'object') {
    return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canon(v[k])).join(',') +
      '}';
  }
  return JSON.stringify(v);
}

function sortedObj(o) {
  const r = {};
  for (const k of Object.keys(o).sort()) r[k] = o[k];
  return r;
}

function checkSandbox(sb, wantId, tBefore, tAfter, where) {
  const fx = FIXTURE.create;
  check(ID_RE.test(sb.id), `${where}: id ${show(sb.id)} is opaque [A-Za-z0-9_.-]{8,64}`);
  if (wantId !== null) checkEq(sb.id, wantId, `${where}: id`);
  check(sb.python_version.startsWith(fx.python_version + '.'),
    `${where}: python_version ${show(sb.python_version)} starts with ${fx.python_version}.`);
  check(/^3\.11\.\d+$/.test(sb.python_version),
    `${where}: python_version ${show(sb.python_version)} is the interpreter's X.Y.Z`);
  checkEq(sb.modules, fx.modules, `${where}: modules`);
  check(sb.limits !== null && sb.limits !== undefined, `${where}: limits present`);
  for (const f of LIMIT_FIELDS) {
    const v = sb.limits ? big(sb.limits[f]) : 0n;
    check(v > 0n, `${where}: effective limits.${f} = ${v} > 0`);
  }
  check(sb.image.startsWith('safeeval/sandbox:') && sb.image.length > 'safeeval/sandbox:'.length,
    `${where}: image ${show(sb.image)} is safeeval/sandbox:<hash>`);
  const created = big(sb.created_at_ms);
  const used = big(sb.last_used_at_ms);
  check(created >= BigInt(tBefore - 2000) && created <= BigInt(tAfter + 2000),
    `${where}: created_at_ms ${created} within the create call [${tBefore}, ${tAfter}] (+-2 s)`);
  check(created <= used && used <= BigInt(Date.now() + 2000),
    `${where}: created_at_ms ${created} <= last_used_at_ms ${used} <= now`);
  checkEq(sortedObj(sb.labels), sortedObj(fx.labels), `${where}: labels echoed`);
  check(sb.idle_timeout_s > 0, `${where}: effective idle_timeout_s ${sb.idle_timeout_s} > 0`);
  checkEq(sb.max_concurrent_runs, fx.max_concurrent_runs, `${where}: max_concurrent_runs`);
  if (wantId === null) {
    checkEq(sb.workers, 1, `${where}: workers (a new sandbox starts with one)`);
  } else {
    check(sb.workers >= 1 && sb.workers <= sb.max_concurrent_runs,
      `${where}: workers ${sb.workers} in [1, ${sb.max_concurrent_runs}]`);
  }
}

function checkTimes(res, where, maxWallUs = 30000000n) {
  const wall = big(res.wall_time_us);
  const cpu = big(res.cpu_time_us);
  const rss = big(res.max_rss_bytes);
  check(wall > 0n && wall <= maxWallUs, `${where}: wall_time_us ${wall} in (0, ${maxWallUs}]`);
  check(cpu > 0n && cpu <= 2n * wall + 50000n, `${where}: cpu_time_us ${cpu} in (0, 2*wall+50ms]`);
  check(rss > (1n << 20n) && rss < (8n << 30n),
    `${where}: max_rss_bytes ${rss} in (1 MiB, 8 GiB)`);
}

function checkOutput(res, stdout, stderr, where) {
  checkEq(res.stdout, Buffer.from(stdout), `${where}: stdout`);
  checkEq(res.stderr, Buffer.from(stderr), `${where}: stderr`);
  checkEq(res.stdout_truncated, false, `${where}: stdout_truncated`);
  checkEq(res.stderr_truncated, false, `${where}: stderr_truncated`);
  checkEq(big(res.stdout_bytes), BigInt(Buffer.byteLength(stdout)), `${where}: stdout_bytes`);
  checkEq(big(res.stderr_bytes), BigInt(Buffer.byteLength(stderr)), `${where}: stderr_bytes`);
}

async function runCycle(client) {
  const fx = FIXTURE;

  // Create
  const t0 = Date.now();
  let sb = (await call(client, 'CreateSandbox', {
    python_version: fx.create.python_version, modules: fx.create.modules,
    labels: fx.create.labels, max_concurrent_runs: fx.create.max_concurrent_runs,
  }, CREATE_TIMEOUT_MS)).sandbox;
  const t1 = Date.now();
  console.log(`created ${sb.id} (${sb.python_version}, ${sb.image}) in ${t1 - t0} ms`);
  checkSandbox(sb, null, t0, t1, 'create');
  const sid = sb.id;
  const created = sb;

  // Eval
  let res = (await call(client, 'Eval', { sandbox_id: sid, code: fx.eval.code },
    RUN_TIMEOUT_MS)).result;
  checkEq(res.reason, 'EXIT_REASON_EXITED', 'eval: reason');
  checkEq(res.exit_code, 0, 'eval: exit_code');
  checkEq(res.signal, 0, 'eval: signal');
  checkOutput(res, fx.eval.stdout, '', 'eval');
  checkTimes(res, 'eval');

  // ExecuteFile
  const f = fx.file;
  res = (await call(client, 'ExecuteFile', {
    sandbox_id: sid, filename: f.filename, content: Buffer.from(f.content),
    stdin: Buffer.from(f.stdin), args: f.args, env: f.env,
    files: f.files.map((x) => ({ path: x.path, content: Buffer.from(x.content) })),
  }, RUN_TIMEOUT_MS)).result;
  if (res.exit_code !== f.exit_code) console.log('execute-file stderr:\n' + res.stderr.toString());
  checkEq(res.reason, 'EXIT_REASON_EXITED', 'execute-file: reason');
  checkEq(res.exit_code, f.exit_code, 'execute-file: exit_code');
  checkEq(res.signal, 0, 'execute-file: signal');
  checkOutput(res, f.stdout, f.stderr, 'execute-file');
  checkTimes(res, 'execute-file');

  // A limit hit: endless loop, 300 ms of wall time.
  const lf = fx.limit;
  res = (await call(client, 'Eval', {
    sandbox_id: sid, code: lf.code, limits: { wall_time_ms: lf.wall_time_ms },
  }, RUN_TIMEOUT_MS)).result;
  checkEq(res.reason, 'EXIT_REASON_WALL_TIMEOUT', 'limit: reason');
  check(res.signal === 9 || res.signal === 15, `limit: signal ${res.signal} is SIGKILL or SIGTERM`);
  checkEq(res.exit_code, -res.signal, 'limit: exit_code = -signal');
  checkOutput(res, '', '', 'limit');
  const wall = big(res.wall_time_us);
  const cpu = big(res.cpu_time_us);
  check(wall >= BigInt(lf.min_wall_us) && wall <= BigInt(lf.max_wall_us),
    `limit: wall_time_us ${wall} in [${lf.min_wall_us}, ${lf.max_wall_us}]`);
  check(cpu >= BigInt(lf.min_cpu_us) && cpu <= 2n * wall + 50000n,
    `limit: cpu_time_us ${cpu} in [${lf.min_cpu_us}, 2*wall+50ms] (it ran Python)`);
  const rss = big(res.max_rss_bytes);
  check(rss > (1n << 20n) && rss < (8n << 30n), `limit: max_rss_bytes ${rss} in (1 MiB, 8 GiB)`);

  // Get
  sb = (await call(client, 'GetSandbox', { sandbox_id: sid }, RUN_TIMEOUT_MS)).sandbox;
  checkSandbox(sb, sid, t0, t1, 'get');
  checkEq(sb.created_at_ms, created.created_at_ms, 'get: created_at_ms unchanged');
  checkEq(sb.image, created.image, 'get: image unchanged');
  checkEq(sb.python_version, created.python_version, 'get: python_version unchanged');
  checkEq(canon(sb.limits), canon(created.limits), 'get: limits unchanged');
  check(big(sb.last_used_at_ms) >= big(created.last_used_at_ms) &&
        big(sb.last_used_at_ms) >= BigInt(t1 - 2000),
  `get: last_used_at_ms ${sb.last_used_at_ms} moved on with the runs ` +
        `(create: ${created.last_used_at_ms})`);

  // List
  let list = (await call(client, 'ListSandboxes', {}, RUN_TIMEOUT_MS)).sandboxes;
  const mine = list.filter((s) => s.id === sid);
  checkEq(mine.length, 1, `list: contains ${sid} once`);
  if (mine.length === 1) {
    checkEq(canon(mine[0]), canon(sb), 'list: entry equals get');
  }

  // Errors the contract promises.
  await expectCode(call(client, 'Eval', { sandbox_id: sid, code: '' }, RUN_TIMEOUT_MS),
    grpc.status.INVALID_ARGUMENT, 'eval with empty code');

  // Destroy
  await call(client, 'DestroySandbox', { sandbox_id: sid }, RUN_TIMEOUT_MS);
  await expectCode(call(client, 'GetSandbox', { sandbox_id: sid }, RUN_TIMEOUT_MS),
    grpc.status.NOT_FOUND, 'get after destroy');
  await expectCode(call(client, 'Eval', { sandbox_id: sid, code: 'print(1)' }, RUN_TIMEOUT_MS),
    grpc.status.NOT_FOUND, 'eval after destroy');
  list = (await call(client, 'ListSandboxes', {}, RUN_TIMEOUT_MS)).sandboxes;
  check(list.every((s) => s.id !== sid), `list after destroy: ${sid} gone`);
}

async function main() {
  if (process.argv.length !== 3) {
    console.error('usage: node client.js SOCKET_PATH');
    return 2;
  }
  const def = protoLoader.loadSync('safeeval/v1/sandbox.proto', {
    includeDirs: [path.join(SOURCE_DIR, 'proto')],
    keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def);
  const client = new pkg.safeeval.v1.SandboxService('unix:' + process.argv[2],
    grpc.credentials.createInsecure());
  await new Promise((resolve, reject) => {
    client.waitForReady(Date.now() + 30000, (err) => (err ? reject(err) : resolve()));
  });
  try {
    await runCycle(client);
  } finally {
    client.close();
  }
  if (failures.length) {
    console.log(`${failures.length} check(s) failed:`);
    for (const f of failures) console.log('  ' + f);
    return 1;
  }
  console.log('node interop: all checks passed');
  return 0;
}

main().then((rc) => { process.exitCode = rc; }, (e) => {
  console.error('node interop: ' + (e && e.stack ? e.stack : e));
  process.exitCode = 1;
});
