#!/usr/bin/env node
// Interop, issue 9: a Node client (@grpc/grpc-js) against a daemon with
// --tokens: no token and a wrong one are UNAUTHENTICATED, the request id is
// returned in the trailing metadata, and a second tenant cannot get, run in,
// destroy or list the first's sandbox (each answers as for an unknown id).
// Usage: node auth.js SOCKET_PATH TOKENS_JSON   ({"alice": "...", "bob": "..."})
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const SOURCE_DIR = process.env.SAFEEVAL_SOURCE_DIR || path.resolve(__dirname, '..', '..', '..');
const UNKNOWN = '0123456789abcdef01234567';
const failures = [];

function check(cond, what) {
  console.log((cond ? 'ok   ' : 'FAIL ') + what);
  if (!cond) failures.push(what);
  return cond;
}

function md(token, rid) {
  const m = new grpc.Metadata();
  if (token !== null) m.set('authorization', 'Bearer ' + token);
  if (rid) m.set('x-request-id', rid);
  return m;
}

// Resolves {err, resp, trailers}: never rejects.
function call(client, method, req, meta, timeoutMs = 600000) {
  return new Promise((resolve) => {
    let trailers = null;
    const c = client[method](req, meta, { deadline: Date.now() + timeoutMs }, (err, resp) => {
      setImmediate(() => resolve({ err, resp, trailers }));
    });
    c.on('status', (s) => { trailers = s.metadata; });
  });
}

function code(r) {
  return r.err ? grpc.status[r.err.code] : 'OK';
}

async function main() {
  if (process.argv.length !== 4) {
    console.error('usage: node auth.js SOCKET_PATH TOKENS_JSON');
    return 2;
  }
  const tok = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
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
    let r = await call(client, 'ListSandboxes', {}, md(null));
    check(code(r) === 'UNAUTHENTICATED', `no token: ${code(r)} is UNAUTHENTICATED`);
    r = await call(client, 'ListSandboxes', {}, md('not-' + tok.alice));
    check(code(r) === 'UNAUTHENTICATED', `wrong token: ${code(r)} is UNAUTHENTICATED`);
    check(!r.err || !r.err.details.includes(tok.alice), 'wrong token: not echoed');

    r = await call(client, 'ListSandboxes', {}, md(tok.alice, 'node-rid-1'));
    check(code(r) === 'OK', `alice lists: ${code(r)}`);
    const rid = r.trailers ? r.trailers.get('x-request-id') : [];
    check(rid.length === 1 && rid[0] === 'node-rid-1',
      `x-request-id returned in the trailers: ${JSON.stringify(rid)}`);

    r = await call(client, 'CreateSandbox', { python_version: '3.11' }, md(tok.alice));
    if (!check(code(r) === 'OK', `alice creates: ${code(r)} ${r.err ? r.err.details : ''}`)) {
      return 1;
    }
    const sid = r.resp.sandbox.id;
    check(r.resp.sandbox.owner === 'alice', `owner: ${r.resp.sandbox.owner}`);
    try {
      const asks = [
        ['GetSandbox', (id) => ({ sandbox_id: id })],
        ['Eval', (id) => ({ sandbox_id: id, code: 'print(1)' })],
        ['ExecuteFile', (id) => ({ sandbox_id: id, filename: 'a.py', content: Buffer.from('1') })],
        ['DestroySandbox', (id) => ({ sandbox_id: id })],
      ];
      for (const [m, req] of asks) {
        const unknown = await call(client, m, req(UNKNOWN), md(tok.bob));
        const theirs = await call(client, m, req(sid), md(tok.bob));
        check(code(theirs) === 'NOT_FOUND', `bob ${m} alice's sandbox: ${code(theirs)}`);
        check(unknown.err && theirs.err &&
              theirs.err.details.replace(sid, 'ID') === unknown.err.details.replace(UNKNOWN, 'ID'),
        `bob ${m}: the same answer as an unknown id ` +
              `(${theirs.err && theirs.err.details} / ${unknown.err && unknown.err.details})`);
      }
      r = await call(client, 'ListSandboxes', {}, md(tok.bob));
      check(code(r) === 'OK' && r.resp.sandboxes.every((s) => s.id !== sid),
        'bob does not list it');
      r = await call(client, 'Eval', { sandbox_id: sid, code: 'print(6*7)' }, md(tok.alice));
      check(code(r) === 'OK' && r.resp.result.stdout.toString() === '42\n',
        'alice still runs in it');
    } finally {
      r = await call(client, 'DestroySandbox', { sandbox_id: sid }, md(tok.alice));
      check(code(r) === 'OK', `alice destroys it: ${code(r)}`);
    }
  } finally {
    client.close();
  }
  if (failures.length) {
    console.log(`${failures.length} check(s) failed:`);
    for (const f of failures) console.log('  ' + f);
    return 1;
  }
  console.log('node auth interop: all checks passed');
  return 0;
}

main().then((rc) => { process.exitCode = rc; }, (e) => {
  console.error('node auth interop: ' + (e && e.stack ? e.stack : e));
  process.exitCode = 1;
});
