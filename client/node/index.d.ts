// Types of the safeeval Node SDK (index.js). Times are seconds, sizes bytes.
import type { ChannelCredentials } from '@grpc/grpc-js';

/** Limits of a run or a sandbox; 0 or absent = the default. */
export interface Limits {
  wallTime?: number;
  cpuTime?: number;
  memory?: number;
  maxProcesses?: number;
  /** bytes kept per stream (stdout, stderr) */
  maxOutput?: number;
  /** bytes any one written file may reach */
  maxFile?: number;
  maxCollectFiles?: number;
  maxCollectBytes?: number;
}

export type Reason = 'unspecified' | 'exited' | 'signaled' | 'wall_timeout' | 'cpu_timeout' |
  'memory_limit' | 'file_size_limit';

/** A run's result: subprocess.CompletedProcess's fields plus safeeval's. */
export interface Result<T extends string | Buffer = string> {
  /** ['python3', '-c', code, ...args] or ['python3', filename, ...args] */
  args: string[];
  /** the exit status; -N when signal N ended the run */
  returncode: number;
  stdout: T;
  stderr: T;
  /** why the run ended: a hit limit is a reason, never an exception */
  reason: Reason;
  signal: number;
  truncated: boolean;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  stdoutBytes: number;
  stderrBytes: number;
  wallTime: number;
  cpuTime: number;
  maxRss: number;
  /** the files `collect` brought back, path -> content, in path order */
  files: Record<string, Buffer>;
  filesTruncated: boolean;
}

export interface RunOptions {
  /** wall-time limit in seconds; 0 = the sandbox's */
  timeLimit?: number;
  stdin?: string | Buffer;
  args?: string[];
  env?: Record<string, string>;
  /** placed in the working directory before the run */
  files?: Record<string, string | Buffer>;
  /** paths or globs under the working directory whose files come back */
  collect?: string[];
  limits?: Limits;
  /** 'utf8' (default) or null for Buffers */
  encoding?: BufferEncoding | null;
  /** seconds the call may take in all, queue wait included */
  timeout?: number;
}

export interface FileRunOptions extends RunOptions {
  /** the script's content; then `filename` only names it */
  content?: string | Buffer;
}

export interface ConnectOptions {
  /** 'unix:/path' or 'host:port'; default $SAFEEVAL_TARGET, then DEFAULT_TARGET */
  target?: string;
  /** bearer token; default $SAFEEVAL_TOKEN */
  token?: string;
  credentials?: ChannelCredentials;
  channelOptions?: Record<string, unknown>;
  timeout?: number;
}

export interface CreateOptions extends ConnectOptions {
  /** '3.11'; default the server's. A version it lacks: VersionNotAvailable */
  version?: string;
  modules?: string[];
  limits?: Limits;
  idleTimeout?: number;
  labels?: Record<string, string>;
  maxConcurrentRuns?: number;
  preload?: string[];
  runner?: 'fresh' | 'zygote';
  /** each line of the image build while the sandbox is created */
  onProgress?: (line: string) => void;
  createTimeout?: number;
  /** default deadline (s) of every run call; default none */
  timeout?: number;
}

export interface SandboxInfo {
  id: string;
  pythonVersion: string;
  modules: string[];
  limits: Required<Limits>;
  image: string;
  createdAt: number;
  lastUsedAt: number;
  labels: Record<string, string>;
  idleTimeout: number;
  maxConcurrentRuns: number;
  workers: number;
  preload: string[];
  runner: string;
  owner: string;
}

export interface PythonVersion {
  version: string;
  fullVersion: string;
  baseImage: string;
}

export interface ServerInfo {
  version: string;
  buildId: string;
  apiVersion: string;
  pythons: PythonVersion[];
  pythonVersions: string[];
  defaultPythonVersion: string;
  defaultLimits: Required<Limits>;
  maxLimits: Required<Limits>;
  maxConcurrentRuns: number;
  maxSandboxes: number;
}

export interface Chunk<T extends string | Buffer = string> {
  stream: 'stdout' | 'stderr';
  data: T;
}

/** A streamed run: iterate it once, then read `result`. */
export class RunStream<T extends string | Buffer = string> implements AsyncIterable<Chunk<T>> {
  result: Result<T> | null;
  [Symbol.asyncIterator](): AsyncIterator<Chunk<T>>;
}

export class SafeEval {
  static create(opts?: CreateOptions): Promise<SafeEval>;
  /** creates, calls fn, and closes whatever fn does */
  static with<R>(opts: CreateOptions, fn: (sb: SafeEval) => Promise<R>): Promise<R>;
  readonly id: string;
  readonly sandbox: SandboxInfo;
  readonly closed: boolean;
  eval(code: string, opts?: RunOptions & { encoding?: BufferEncoding }): Promise<Result<string>>;
  eval(code: string, opts: RunOptions & { encoding: null }): Promise<Result<Buffer>>;
  executeFile(filename: string, opts?: FileRunOptions & { encoding?: BufferEncoding }):
    Promise<Result<string>>;
  executeFile(filename: string, opts: FileRunOptions & { encoding: null }): Promise<Result<Buffer>>;
  stream(code: string, opts?: RunOptions & { encoding?: BufferEncoding }): RunStream<string>;
  stream(code: string, opts: RunOptions & { encoding: null }): RunStream<Buffer>;
  streamFile(filename: string, opts?: FileRunOptions & { encoding?: BufferEncoding }):
    RunStream<string>;
  streamFile(filename: string, opts: FileRunOptions & { encoding: null }): RunStream<Buffer>;
  info(): Promise<SandboxInfo>;
  close(): Promise<void>;
}

export function serverInfo(opts?: ConnectOptions): Promise<ServerInfo>;
export function listSandboxes(opts?: ConnectOptions): Promise<SandboxInfo[]>;
export const DEFAULT_TARGET: string;
/** the @grpc/proto-loader options the SDK loads the proto with */
export const LOADER_OPTIONS: Readonly<Record<string, unknown>>;

export class SafeEvalError extends Error {
  /** the gRPC status name: 'NOT_FOUND' */
  code: string;
  /** the gRPC status number */
  grpcCode: number;
  /** the server's message */
  details: string;
}
export class InvalidArgument extends SafeEvalError {}
export class SandboxNotFound extends SafeEvalError {}
export class ResourceExhausted extends SafeEvalError {}
export class FailedPrecondition extends SafeEvalError {}
export class VersionNotAvailable extends FailedPrecondition {
  version: string;
  available: string[] | null;
}
export class Unavailable extends SafeEvalError {}
export class DeadlineExceeded extends SafeEvalError {}
export class Aborted extends SafeEvalError {}
export class PermissionDenied extends SafeEvalError {}
export class Unauthenticated extends PermissionDenied {}
export class Unimplemented extends SafeEvalError {}
export class Cancelled extends SafeEvalError {}
export class Internal extends SafeEvalError {}
