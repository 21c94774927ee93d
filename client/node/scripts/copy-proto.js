#!/usr/bin/env node
// prepack: copies the public contract (../../proto) into the package, so a
// packed or published safeeval carries the proto it loads at run time. In
// the repository the SDK loads ../../proto directly (see index.js).
'use strict';
const fs = require('fs');
const path = require('path');

const rel = path.join('safeeval', 'v1', 'sandbox.proto');
const src = path.join(__dirname, '..', '..', '..', 'proto', rel);
const dst = path.join(__dirname, '..', 'proto', rel);
fs.mkdirSync(path.dirname(dst), { recursive: true });
fs.copyFileSync(src, dst);
