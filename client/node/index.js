// safeeval: the Node SDK. A sandbox on a safeeval server (a Python version
// plus pip modules), with the same results and errors as the Python SDK:
//
//   const { SafeEval } = require('safeeval');
//   const sb = await SafeEval.create({ version: '3.11', modules: ['numpy'] });
//   console.log((await sb.eval('print("Hello World")')).stdout);
//   await sb.close();
//
// The proto is loaded at run time with @grpc/proto-loader. Its options are
// the point of this file: keepCase keeps the proto's snake_case field names
// (the loader's default camelCases them, and a request written with the
// proto's names then silently loses every such field), bytes come as
// Buffers, enums as names, 64-bit integers as Numbers, and oneofs name their
// set member. The requests below are built with exactly those names.
'use strict';

const fs = require('fs');
const fsp = require('fs/promises');
const path = require('path');
const { StringDecoder } = require('string_decoder');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

/** Where a server listens when neither `target` nor $SAFEEVAL_TARGET says. */
const DEFAULT_TARGET = 'unix:/run/safeeval/safeevald.sock';
const MAX_RECEIVE_BYTES = 256 * 1024 * 1024;
const CREATE_TIMEOUT_S = 900;
const SHORT_TIMEOUT_S = 30;
const UINT32_MAX = 4294967295;

const LOADER_OPTIONS = Object.freeze({
  keepCase: true,
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
});

function protoPath() {
  const rel = path.join('safeeval', 'v1', 'sandbox.proto');
  const roots = [process.env.SAFEEVAL_PROTO_DIR, path.join(__dirname, 'proto'),
    path.join(__dirname, '..', '..', 'proto')];
  for (const root of roots) {
    if (root && fs.existsSync(path.join(root, rel))) return { root, rel };
  }
  throw new Error(`safeeval: ${rel} not found (run from the safeeval repository, ` +
    'npm pack it (prepack copies the proto), or set SAFEEVAL_PROTO_DIR)');
}

let service = null;
function Service() {
  if (!service) {
    const { root, rel } = protoPath();
    const def = protoLoader.loadSync(rel, { ...LOADER_OPTIONS, includeDirs: [root] });
    service = grpc.loadPackageDefinition(def).safeeval.v1.SandboxService;
  }
  return service;
}

// -- errors -------------------------------------------------------------------

/** Base of every safeeval error: `code` is the gRPC status name
 * ('NOT_FOUND'), `grpcCode` its number, `details` the server's message. */
class SafeEvalError extends Error {
  constructor(details, code = 'UNKNOWN') {
    super(`${code}: ${details}`);
    this.name = this.constructor.name;
    this.code = code;
    this.grpcCode = grpc.status[code];
    this.details = details;
  }
}
const errorClass = (name, code) => {
  const C = { [name]: class extends SafeEvalError {
    constructor(details, c = code) { super(details, c); }
  } }[name];
  return C;
};
const InvalidArgument = errorClass('InvalidArgument', 'INVALID_ARGUMENT');
const SandboxNotFound = errorClass('SandboxNotFound', 'NOT_FOUND');
const ResourceExhausted = errorClass('ResourceExhausted', 'RESOURCE_EXHAUSTED');
const FailedPrecondition = errorClass('FailedPrecondition', 'FAILED_PRECONDITION');
const Unavailable = errorClass('Unavailable', 'UNAVAILABLE');
const DeadlineExceeded = errorClass('DeadlineExceeded', 'DEADLINE_EXCEEDED');
const Aborted = errorClass('Aborted', 'ABORTED');
const PermissionDenied = errorClass('PermissionDenied', 'PERMISSION_DENIED');
class Unauthenticated extends PermissionDenied {
  constructor(details) { super(details, 'UNAUTHENTICATED'); }
}
const Unimplemented = errorClass('Unimplemented', 'UNIMPLEMENTED');
const Cancelled = errorClass('Cancelled', 'CANCELLED');
const Internal = errorClass('Internal', 'INTERNAL');

/** The server has no Python of the version asked for; `available` lists the
 * ones it has (null when it cannot say: it predates GetServerInfo). */
class VersionNotAvailable extends FailedPrecondition {
  constructor(details, version, available) {
    super(details);
    this.version = version;
    this.available = available;
  }
}

const BY_CODE = {
  INVALID_ARGUMENT: InvalidArgument, NOT_FOUND: SandboxNotFound,
  RESOURCE_EXHAUSTED: ResourceExhausted, FAILED_PRECONDITION: FailedPrecondition,
  UNAVAILABLE: Unavailable, DEADLINE_EXCEEDED: DeadlineExceeded, ABORTED: Aborted,
  PERMISSION_DENIED: PermissionDenied, UNAUTHENTICATED: Unauthenticated,
  UNIMPLEMENTED: Unimplemented, CANCELLED: Cancelled, INTERNAL: Internal,
};

function fromGrpc(e) {
  if (e instanceof SafeEvalError) return e;
  if (typeof e?.code !== 'number') return e; // not a call's status: a bug, pass it on
  const name = grpc.status[e.code] || 'UNKNOWN';
  const C = BY_CODE[name];
  const details = e.details || e.message || '';
  return C ? new C(details, name) : new SafeEvalError(details, name);
}

// -- values -------------------------------------------------------------------

function msFromSeconds(s, what) {
  if (typeof s !== 'number' || !(s >= 0)) {
    throw new InvalidArgument(`${what} must be a number of seconds >= 0, got ${s}`);
  }
  const ms = Math.ceil(s * 1000);
  if (ms > UINT32_MAX) throw new InvalidArgument(`${what}: ${s} s is more than ${UINT32_MAX} ms`);
  return ms;
}

function count(n, what, top = Number.MAX_SAFE_INTEGER) {
  if (n === undefined || n === null) return 0;
  if (!Number.isInteger(n) || n < 0 || n > top) {
    throw new InvalidArgument(`${what} must be an integer in [0, ${top}], got ${n}`);
  }
  return n;
}

const LIMIT_KEYS = ['wallTime', 'cpuTime', 'memory', 'maxProcesses', 'maxOutput', 'maxFile',
  'maxCollectFiles', 'maxCollectBytes'];

/** {wallTime, cpuTime (s), memory, maxProcesses, maxOutput, maxFile,
 * maxCollectFiles, maxCollectBytes} -> the proto's Limits. */
function limitsToPb(l) {
  l = l || {};
  for (const k of Object.keys(l)) {
    if (!LIMIT_KEYS.includes(k)) throw new InvalidArgument(`limits: unknown field ${k}`);
  }
  return {
    wall_time_ms: l.wallTime ? msFromSeconds(l.wallTime, 'limits.wallTime') : 0,
    cpu_time_ms: l.cpuTime ? msFromSeconds(l.cpuTime, 'limits.cpuTime') : 0,
    memory_bytes: count(l.memory, 'limits.memory'),
    max_processes: count(l.maxProcesses, 'limits.maxProcesses', UINT32_MAX),
    max_output_bytes: count(l.maxOutput, 'limits.maxOutput'),
    max_file_bytes: count(l.maxFile, 'limits.maxFile'),
    max_collect_files: count(l.maxCollectFiles, 'limits.maxCollectFiles', UINT32_MAX),
    max_collect_bytes: count(l.maxCollectBytes, 'limits.maxCollectBytes'),
  };
}

function limitsFromPb(m) {
  m = m || {};
  return {
    wallTime: (m.wall_time_ms || 0) / 1000, cpuTime: (m.cpu_time_ms || 0) / 1000,
    memory: m.memory_bytes || 0, maxProcesses: m.max_processes || 0,
    maxOutput: m.max_output_bytes || 0, maxFile: m.max_file_bytes || 0,
    maxCollectFiles: m.max_collect_files || 0, maxCollectBytes: m.max_collect_bytes || 0,
  };
}

function sandboxFromPb(s) {
  return {
    id: s.id, pythonVersion: s.python_version, modules: [...s.modules],
    limits: limitsFromPb(s.limits), image: s.image, createdAt: s.created_at_ms / 1000,
    lastUsedAt: s.last_used_at_ms / 1000, labels: { ...s.labels },
    idleTimeout: s.idle_timeout_s, maxConcurrentRuns: s.max_concurrent_runs,
    workers: s.workers, preload: [...s.preload],
    runner: String(s.runner).replace(/^RUNNER_/, '').toLowerCase(), owner: s.owner,
  };
}

function serverInfoFromPb(i) {
  const pythons = i.pythons.map((p) => ({ version: p.version, fullVersion: p.full_version,
    baseImage: p.base_image }));
  return {
    version: i.version, buildId: i.build_id, apiVersion: i.api_version, pythons,
    pythonVersions: pythons.map((p) => p.version),
    defaultPythonVersion: i.default_python_version,
    defaultLimits: limitsFromPb(i.default_limits), maxLimits: limitsFromPb(i.max_limits),
    maxConcurrentRuns: i.max_concurrent_runs, maxSandboxes: i.max_sandboxes,
  };
}

const toBuffer = (v, what) => {
  if (v === undefined || v === null) return Buffer.alloc(0);
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v);
  throw new InvalidArgument(`${what} must be a string or a Buffer`);
};

function strList(v, what) {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new InvalidArgument(`${what} must be an array of strings`);
  for (const s of v) {
    if (typeof s !== 'string') throw new InvalidArgument(`${what}: ${s} is not a string`);
  }
  return [...v];
}

function runFields(o) {
  const known = ['timeLimit', 'stdin', 'args', 'env', 'files', 'collect', 'encoding', 'limits',
    'timeout', 'content'];
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) throw new InvalidArgument(`unknown option ${k}`);
  }
  const limits = limitsToPb(o.limits);
  if (o.timeLimit) limits.wall_time_ms = msFromSeconds(o.timeLimit, 'timeLimit');
  else if (o.timeLimit !== undefined && o.timeLimit !== 0) {
    throw new InvalidArgument('timeLimit must be a number of seconds >= 0');
  }
  const env = {};
  for (const [k, v] of Object.entries(o.env || {})) {
    if (typeof v !== 'string') throw new InvalidArgument(`env.${k} must be a string`);
    env[k] = v;
  }
  const files = Object.entries(o.files || {}).map(([p, c]) => ({ path: p,
    content: toBuffer(c, `files[${p}]`) }));
  return { stdin: toBuffer(o.stdin, 'stdin'), args: strList(o.args, 'args'), env, limits,
    files, collect: strList(o.collect, 'collect') };
}

const REASONS = { EXIT_REASON_EXITED: 'exited', EXIT_REASON_SIGNALED: 'signaled',
  EXIT_REASON_WALL_TIMEOUT: 'wall_timeout', EXIT_REASON_CPU_TIMEOUT: 'cpu_timeout',
  EXIT_REASON_MEMORY_LIMIT: 'memory_limit', EXIT_REASON_FILE_SIZE_LIMIT: 'file_size_limit' };

function makeResult(args, r, encoding, stdout, stderr) {
  const dec = (b) => (encoding ? b.toString(encoding) : b);
  const files = {};
  for (const f of r.files || []) files[f.path] = f.content;
  return {
    args,
    returncode: r.exit_code,
    stdout: dec(stdout || r.stdout),
    stderr: dec(stderr || r.stderr),
    reason: REASONS[r.reason] || 'unspecified',
    signal: r.signal,
    truncated: r.stdout_truncated || r.stderr_truncated,
    stdoutTruncated: r.stdout_truncated,
    stderrTruncated: r.stderr_truncated,
    stdoutBytes: r.stdout_bytes,
    stderrBytes: r.stderr_bytes,
    wallTime: r.wall_time_us / 1e6,
    cpuTime: r.cpu_time_us / 1e6,
    maxRss: r.max_rss_bytes,
    files,
    filesTruncated: r.files_truncated,
  };
}

// -- connection -----------------------------------------------------------------

function connect(opts = {}) {
  const target = opts.target || process.env.SAFEEVAL_TARGET || DEFAULT_TARGET;
  const token = opts.token !== undefined ? opts.token : process.env.SAFEEVAL_TOKEN;
  const Svc = Service();
  const client = new Svc(target, opts.credentials || grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
    'grpc.max_send_message_length': -1,
    // Our calls are not idempotent: a retried create could make two sandboxes.
    'grpc.enable_retries': 0,
    ...(opts.channelOptions || {}),
  });
  const metadata = () => {
    const md = new grpc.Metadata();
    if (token) md.set('authorization', `Bearer ${token}`);
    return md;
  };
  const callOpts = (timeoutS) => (timeoutS ? { deadline: Date.now() + timeoutS * 1000 } : {});
  const unary = (method, req, timeoutS) => new Promise((resolve, reject) => {
    client[method](req, metadata(), callOpts(timeoutS), (err, resp) => {
      if (err) reject(fromGrpc(err)); else resolve(resp);
    });
  });
  const stream = (method, req, timeoutS) => client[method](req, metadata(), callOpts(timeoutS));
  return { client, unary, stream };
}

/** What a server offers: version, Python versions, default and largest limits. */
async function serverInfo(opts = {}) {
  const c = connect(opts);
  try {
    const r = await c.unary('GetServerInfo', {}, opts.timeout ?? SHORT_TIMEOUT_S);
    return serverInfoFromPb(r.info);
  } finally {
    c.client.close();
  }
}

/** Every live sandbox on the server, oldest first. */
async function listSandboxes(opts = {}) {
  const c = connect(opts);
  try {
    const r = await c.unary('ListSandboxes', {}, opts.timeout ?? SHORT_TIMEOUT_S);
    return r.sandboxes.map(sandboxFromPb);
  } finally {
    c.client.close();
  }
}

// Sandboxes not closed yet: destroyed when the event loop runs dry
// ('beforeExit'), so a script that forgets close() leaves nothing behind.
// process.exit() and fatal errors skip 'beforeExit': close() is the rule.
const open = new Set();
let exitHookSet = false;
function trackOpen(sb) {
  open.add(sb);
  if (!exitHookSet) {
    exitHookSet = true;
    process.on('beforeExit', () => {
      if (open.size) Promise.allSettled([...open].map((s) => s.close())).then(() => {});
    });
  }
}

// -- the sandbox ----------------------------------------------------------------

class SafeEval {
  constructor(conn, sandbox, timeout) {
    this._c = conn;
    this._timeout = timeout;
    /** The sandbox's id. */
    this.id = sandbox.id;
    /** The sandbox as created: pythonVersion, limits (effective), image, ... */
    this.sandbox = sandboxFromPb(sandbox);
    this.closed = false;
  }

  /**
   * Creates a sandbox. opts: version ('3.11'; default the server's), modules,
   * target (default $SAFEEVAL_TARGET, then unix:/run/safeeval/safeevald.sock),
   * token (default $SAFEEVAL_TOKEN), credentials (grpc-js ChannelCredentials for
   * TLS), limits, idleTimeout (s), labels, maxConcurrentRuns, preload, runner
   * ('fresh' | 'zygote'), onProgress(line) (image build lines), createTimeout (s),
   * timeout (s, default deadline of each run call; default none), channelOptions.
   */
  static async create(opts = {}) {
    const known = ['version', 'modules', 'target', 'token', 'credentials', 'limits',
      'idleTimeout', 'labels', 'maxConcurrentRuns', 'preload', 'runner', 'onProgress',
      'createTimeout', 'timeout', 'channelOptions'];
    for (const k of Object.keys(opts)) {
      if (!known.includes(k)) throw new InvalidArgument(`SafeEval.create: unknown option ${k}`);
    }
    if (opts.version !== undefined && opts.version !== null && typeof opts.version !== 'string') {
      throw new InvalidArgument(`version must be a string like "3.11", got ${opts.version}`);
    }
    const runners = { undefined: 'RUNNER_DEFAULT', null: 'RUNNER_DEFAULT',
      fresh: 'RUNNER_FRESH', zygote: 'RUNNER_ZYGOTE' };
    if (!Object.hasOwn(runners, String(opts.runner))) {
      throw new InvalidArgument(`runner must be "fresh", "zygote" or undefined, got ${opts.runner}`);
    }
    const req = {
      python_version: opts.version || '', modules: strList(opts.modules, 'modules'),
      limits: limitsToPb(opts.limits), idle_timeout_s: count(opts.idleTimeout, 'idleTimeout',
        UINT32_MAX),
      labels: { ...(opts.labels || {}) },
      max_concurrent_runs: count(opts.maxConcurrentRuns, 'maxConcurrentRuns', UINT32_MAX),
      preload: strList(opts.preload, 'preload'), runner: runners[String(opts.runner)],
    };
    const c = connect(opts);
    const timeout = opts.createTimeout ?? CREATE_TIMEOUT_S;
    let sandbox;
    try {
      sandbox = opts.onProgress ? await createStreamed(c, req, timeout, opts.onProgress)
        : (await c.unary('CreateSandbox', req, timeout)).sandbox;
    } catch (e) {
      const err = e instanceof FailedPrecondition ? await versionError(c, e, opts.version) : e;
      c.client.close();
      throw err;
    }
    const sb = new SafeEval(c, sandbox, opts.timeout);
    trackOpen(sb);
    return sb;
  }

  /** Creates a sandbox, calls fn(sb), and closes it whatever fn does. */
  static async with(opts, fn) {
    const sb = await SafeEval.create(opts);
    try {
      return await fn(sb);
    } finally {
      await sb.close();
    }
  }

  /** Destroys the sandbox (idempotent; a sandbox already gone is not an error). */
  async close() {
    if (this.closed) return;
    this.closed = true;
    open.delete(this);
    try {
      await this._c.unary('DestroySandbox', { sandbox_id: this.id }, SHORT_TIMEOUT_S);
    } catch (e) {
      if (!(e instanceof SandboxNotFound)) throw e;
    } finally {
      this._c.client.close();
    }
  }

  async [Symbol.asyncDispose || Symbol.for('Symbol.asyncDispose')]() {
    await this.close();
  }

  /** The sandbox as the server sees it now. */
  async info() {
    this._checkOpen();
    const r = await this._c.unary('GetSandbox', { sandbox_id: this.id }, SHORT_TIMEOUT_S);
    return sandboxFromPb(r.sandbox);
  }

  _checkOpen() {
    if (this.closed) throw new SandboxNotFound(`this SafeEval is closed (sandbox ${this.id} destroyed)`);
  }

  _evalReq(code, o) {
    this._checkOpen();
    if (typeof code !== 'string') throw new InvalidArgument('code must be a string');
    return { sandbox_id: this.id, code, ...runFields(o) };
  }

  async _fileReq(filename, o) {
    this._checkOpen();
    const name = path.basename(String(filename));
    let content = o.content;
    if (content === undefined) {
      try {
        content = await fsp.readFile(filename);
      } catch (e) {
        throw new InvalidArgument(`executeFile: cannot read ${filename}: ${e.code || e.message}`);
      }
    }
    const f = runFields(o);
    return { name, req: { sandbox_id: this.id, filename: name,
      content: toBuffer(content, 'content'), ...f } };
  }

  _enc(o) {
    return o.encoding === undefined ? 'utf8' : o.encoding;
  }

  /**
   * Runs a code string as the script __main__ in a fresh jail. opts: timeLimit
   * (s; 0 = the sandbox's), stdin, args, env, files ({path: Buffer|string}),
   * collect (paths/globs whose files come back in result.files), limits,
   * encoding ('utf8' default; null = Buffers), timeout (s, the call's deadline).
   * A hit limit is result.reason, not an exception.
   */
  async eval(code, opts = {}) {
    const req = this._evalReq(code, opts);
    const r = await this._c.unary('Eval', req, opts.timeout ?? this._timeout);
    return makeResult(['python3', '-c', code, ...req.args], r.result, this._enc(opts));
  }

  /** Runs a local file (or opts.content under that name) as a script. */
  async executeFile(filename, opts = {}) {
    const { name, req } = await this._fileReq(filename, opts);
    const r = await this._c.unary('ExecuteFile', req, opts.timeout ?? this._timeout);
    return makeResult(['python3', name, ...req.args], r.result, this._enc(opts));
  }

  /**
   * eval(), streamed: an async iterable of {stream: 'stdout'|'stderr', data}
   * as the run writes; after the loop, `.result` is the run's result (its
   * stdout/stderr: all the chunks). Leaving the loop early cancels the run.
   */
  stream(code, opts = {}) {
    const req = this._evalReq(code, opts);
    return new RunStream(() => this._c.stream('EvalStream', req, opts.timeout ?? this._timeout),
      ['python3', '-c', code, ...req.args], this._enc(opts));
  }

  /** executeFile(), streamed like stream(). */
  streamFile(filename, opts = {}) {
    const pending = this._fileReq(filename, opts);
    pending.catch(() => {}); // reported when iterated
    return new RunStream(async () => {
      const { req } = await pending;
      return this._c.stream('ExecuteFileStream', req, opts.timeout ?? this._timeout);
    }, null, this._enc(opts), pending);
  }
}

async function createStreamed(c, req, timeout, onProgress) {
  const call = c.stream('CreateSandboxStream', req, timeout);
  try {
    for await (const ev of call) {
      if (ev.event === 'progress') onProgress(ev.progress);
      else if (ev.event === 'sandbox') return ev.sandbox;
    }
  } catch (e) {
    const err = fromGrpc(e);
    if (err instanceof Unimplemented) return (await c.unary('CreateSandbox', req, timeout)).sandbox;
    throw err;
  } finally {
    call.cancel();
  }
  throw new Internal('CreateSandboxStream ended without a sandbox');
}

async function versionError(c, e, version) {
  if (!version) return e;
  let info;
  try {
    info = serverInfoFromPb((await c.unary('GetServerInfo', {}, SHORT_TIMEOUT_S)).info);
  } catch (ie) {
    if (ie instanceof Unimplemented) {
      return new VersionNotAvailable(`Python ${version}: ${e.details} (this server cannot list ` +
        'its versions: it predates GetServerInfo)', version, null);
    }
    return e;
  }
  if (info.pythons.some((p) => p.version === version || (p.fullVersion && p.fullVersion === version))) {
    return e;
  }
  return new VersionNotAvailable(`Python ${version} is not available on this server; it offers ` +
    `${info.pythonVersions.join(', ') || 'none'} (server: ${e.details})`, version,
  info.pythonVersions);
}

/** A streamed run: `for await (const chunk of s)`, then `s.result`. */
class RunStream {
  constructor(start, args, encoding, pendingFile) {
    this._start = start;
    this._args = args;
    this._encoding = encoding;
    this._pending = pendingFile;
    this._started = false;
    this.result = null;
  }

  async* [Symbol.asyncIterator]() {
    if (this._started) throw new Error('a RunStream can be iterated once');
    this._started = true;
    if (this._pending) this._args = ['python3', (await this._pending).name,
      ...(await this._pending).req.args];
    const call = await this._start();
    const out = { stdout: [], stderr: [] };
    const dec = this._encoding ? { stdout: new StringDecoder(this._encoding),
      stderr: new StringDecoder(this._encoding) } : null;
    try {
      for await (const ev of call) {
        if (ev.event === 'stdout' || ev.event === 'stderr') {
          const data = ev[ev.event];
          out[ev.event].push(data);
          const piece = dec ? dec[ev.event].write(data) : data;
          if (piece.length) yield { stream: ev.event, data: piece };
        } else if (ev.event === 'result') {
          if (dec) {
            for (const k of ['stdout', 'stderr']) {
              const tail = dec[k].end();
              if (tail.length) yield { stream: k, data: tail };
            }
          }
          this.result = makeResult(this._args, ev.result, this._encoding,
            Buffer.concat(out.stdout), Buffer.concat(out.stderr));
          return;
        }
      }
    } catch (e) {
      throw fromGrpc(e);
    } finally {
      call.cancel();
    }
    throw new Internal("the run's stream ended without a result");
  }
}

module.exports = {
  SafeEval, RunStream, serverInfo, listSandboxes, DEFAULT_TARGET, LOADER_OPTIONS,
  SafeEvalError, InvalidArgument, SandboxNotFound, ResourceExhausted, FailedPrecondition,
  VersionNotAvailable, Unavailable, DeadlineExceeded, Aborted, PermissionDenied,
  Unauthenticated, Unimplemented, Cancelled, Internal,
};
