'use strict';
// A refusal's stable reason: the google.rpc.Status in the grpc-status-details-bin trailer
// holds google.rpc.ErrorInfo (reason, metadata), BadRequest and LocalizedMessage.

const fs = require('node:fs');
const path = require('node:path');
const protobuf = require('protobufjs');
const grpc = require('@grpc/grpc-js');

const TYPE_PREFIX = 'type.googleapis.com/';

/** google.rpc.Status and its detail types, from the first of ``roots`` holding google/rpc (googleapis). */
function loadRpcTypes(roots) {
  const searched = [...roots];
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    const found = searched.map((dir) => path.join(dir, target)).find((file) => fs.existsSync(file));
    return found ?? protobuf.util.path.resolve(origin, target); // google/protobuf/* are protobufjs' own
  };
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
  return root;
}

/**
 * What a failed call says: { code: 'PERMISSION_DENIED', reason, metadata, violations, localized, message }.
 * ``reason`` is empty when the status carries no ErrorInfo: a transport failure, not a yidi refusal.
 */
function describeRefusal(error, rpcTypes) {
  const refusal = {
    code: grpc.status[error.code] ?? String(error.code),
    reason: '',
    metadata: {},
    violations: [],
    localized: '',
    message: error.details ?? error.message,
  };
  const [trailer] = error.metadata?.get('grpc-status-details-bin') ?? [];
  if (!trailer) return refusal;
  const status = rpcTypes.lookupType('google.rpc.Status').decode(trailer);
  for (const detail of status.details) {
    const name = detail.type_url.startsWith(TYPE_PREFIX) ? detail.type_url.slice(TYPE_PREFIX.length) : '';
    const type = name && rpcTypes.lookup(name);
    if (!(type instanceof protobuf.Type)) continue; // a detail type this client does not read
    const value = type.toObject(type.decode(detail.value));
    if (name === 'google.rpc.ErrorInfo') {
      refusal.reason = value.reason;
      refusal.metadata = value.metadata ?? {};
    } else if (name === 'google.rpc.BadRequest') {
      refusal.violations = (value.field_violations ?? []).map((v) => `${v.field}: ${v.description}`);
    } else if (name === 'google.rpc.LocalizedMessage') {
      refusal.localized = value.message;
    }
  }
  return refusal;
}

module.exports = { describeRefusal, loadRpcTypes };
