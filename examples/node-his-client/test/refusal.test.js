'use strict';
// node --test examples/node-his-client/test: reading a refusal from grpc-status-details-bin.

const assert = require('node:assert/strict');
const path = require('node:path');
const test = require('node:test');
const grpc = require('@grpc/grpc-js');

const { describeRefusal, loadRpcTypes } = require('../lib/refusal');

const rpcTypes = loadRpcTypes([path.resolve(__dirname, '..', '..', '..', 'third_party', 'googleapis')]);

function packed(name, value) {
  const type = rpcTypes.lookupType(name);
  return { type_url: `type.googleapis.com/${name}`, value: type.encode(type.fromObject(value)).finish() };
}

function failedCall(code, details) {
  const metadata = new grpc.Metadata();
  const Status = rpcTypes.lookupType('google.rpc.Status');
  if (details) {
    const status = Status.encode(Status.fromObject({ code, details })).finish();
    metadata.set('grpc-status-details-bin', Buffer.from(status));
  }
  return Object.assign(new Error('call failed'), { code, details: 'the node said no', metadata });
}

test('the reason, metadata, field violations and localized message of a refusal', () => {
  const refusal = describeRefusal(failedCall(grpc.status.INVALID_ARGUMENT, [
    packed('google.rpc.ErrorInfo', {
      reason: 'AMOUNT_MISMATCH', domain: 'yidi', metadata: { lines_total_fen: '6429' },
    }),
    packed('google.rpc.BadRequest', {
      field_violations: [{ field: 'medfee_sumamt_fen', description: 'not the lines total' }],
    }),
    packed('google.rpc.LocalizedMessage', { locale: 'zh-CN', message: '金额不符' }),
    { type_url: 'type.googleapis.com/google.rpc.RetryInfo', value: Buffer.alloc(0) },
  ]), rpcTypes);
  assert.equal(refusal.code, 'INVALID_ARGUMENT');
  assert.equal(refusal.reason, 'AMOUNT_MISMATCH');
  assert.deepEqual({ ...refusal.metadata }, { lines_total_fen: '6429' });
  assert.deepEqual(refusal.violations, ['medfee_sumamt_fen: not the lines total']);
  assert.equal(refusal.localized, '金额不符');
  assert.equal(refusal.message, 'the node said no');
});

test('a status without details is a transport failure: no reason', () => {
  const refusal = describeRefusal(failedCall(grpc.status.UNAVAILABLE, null), rpcTypes);
  assert.equal(refusal.code, 'UNAVAILABLE');
  assert.equal(refusal.reason, '');
});
