#!/usr/bin/env node
// Interop: a generic Node client with no safeeval .proto. It loads only the
// gRPC reflection protocol (Debian's grpc-proto), asks the daemon for its
// services and for the FileDescriptorProto of SandboxService, builds the
// client from those bytes (proto-loader's loadFileDescriptorSetFromBuffer)
// and runs CreateSandbox, Eval, DestroySandbox through it.
// Usage: node reflection.js SOCKET_PATH   (exit 0 = all passed)
'use strict';

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const GRPC_PROTO = process.env.GRPC_PROTO_DIR || '/usr/share/grpc-proto';
const SVC = 'safeeval.v1.SandboxService';
const failures = [];

function check(cond, what) {
  console.log((cond ? 'ok   ' : 'FAIL ') + what);
  if (!cond) failures.push(what);
  return cond;
}

function varint(n) {
  const out = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

// FileDescriptorSet { repeated FileDescriptorProto file = 1; } from the
// serialized files reflection sent.
function descriptorSet(files) {
  return Buffer.concat(files.flatMap((f) => [Buffer.from([0x0a]), varint(f.length), f]));
}

// One reflection request on its own stream; resolves with the response.
function reflect(client, req) {
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo({ deadline: Date.now() + 10000 });
    let got = null;
    call.on('data', (r) => { got = r; });
    call.on('error', reject);
    call.on('end', () => (got ? resolve(got) : reject(new Error('no response'))));
    call.write(req);
    call.end();
  });
}

function unary(client, method, req, timeoutMs) {
  return new Promise((resolve, reject) => {
    client[method](req, { deadline: Date.now() + timeoutMs }, (err, resp) => {
      if (err) reject(err); else resolve(resp);
    });
  });
}

async function main() {
  const socket = process.argv[2];
  const target = 'unix:' + socket;
  const reflDef = protoLoader.loadSync('grpc/reflection/v1/reflection.proto',
    { includeDirs: [GRPC_PROTO], keepCase: true, oneofs: true });
  const refl = grpc.loadPackageDefinition(reflDef).grpc.reflection.v1;
  const rc = new refl.ServerReflection(target, grpc.credentials.createInsecure());

  const list = await reflect(rc, { list_services: '' });
  const names = list.list_services_response.service.map((s) => s.name);
  check(names.includes(SVC), `list_services has ${SVC}: ${names}`);
  check(names.includes('grpc.health.v1.Health'), 'list_services has grpc.health.v1.Health');

  const fd = await reflect(rc, { file_containing_symbol: SVC });
  check(fd.message_response === 'file_descriptor_response', 'file_containing_symbol answered');
  const files = fd.file_descriptor_response.file_descriptor_proto;
  const def = protoLoader.loadFileDescriptorSetFromBuffer(descriptorSet(files),
    { keepCase: true, longs: String, enums: String, defaults: true });
  const Sandbox = grpc.loadPackageDefinition(def).safeeval.v1.SandboxService;
  check(typeof Sandbox === 'function', 'a SandboxService client built from reflection');
  const err = await reflect(rc, { file_containing_symbol: 'safeeval.v1.Nope' });
  check(err.message_response === 'error_response' && err.error_response.error_code === 5,
    'an unknown symbol is NOT_FOUND');
  rc.close();

  const c = new Sandbox(target, grpc.credentials.createInsecure());
  const sb = (await unary(c, 'CreateSandbox', { python_version: '3.11' }, 900000)).sandbox;
  check(/^[a-z0-9]{8,64}$/.test(sb.id), `CreateSandbox through reflection: id ${sb.id}`);
  try {
    const r = (await unary(c, 'Eval', { sandbox_id: sb.id, code: 'print(6 * 7)' }, 60000)).result;
    check(r.reason === 'EXIT_REASON_EXITED' && r.exit_code === 0,
      `Eval exited 0: ${r.reason} ${r.exit_code}`);
    check(Buffer.from(r.stdout).toString() === '42\n', `Eval stdout: ${JSON.stringify(String(r.stdout))}`);
  } finally {
    await unary(c, 'DestroySandbox', { sandbox_id: sb.id }, 60000);
  }
  try {
    await unary(c, 'GetSandbox', { sandbox_id: sb.id }, 10000);
    check(false, 'GetSandbox after DestroySandbox is NOT_FOUND');
  } catch (e) {
    check(e.code === grpc.status.NOT_FOUND, `GetSandbox after DestroySandbox: ${e.code}`);
  }
  c.close();
}

main().then(() => {
  console.log(failures.length ? `${failures.length} failed` : 'all passed');
  process.exit(failures.length ? 1 : 0);
}, (e) => {
  console.log('FAIL ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
