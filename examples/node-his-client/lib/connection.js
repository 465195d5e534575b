'use strict';
// The HIS's channel to its node: SettlementService from the repository's .proto files as they
// are, mutual TLS as the institution, a deadline on every call, and resends of the same
// request when an answer is lost.

const fs = require('node:fs');
const path = require('node:path');
const { setTimeout: sleep } = require('node:timers/promises');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const { describeRefusal, loadRpcTypes } = require('./refusal');

const MUTATING_DEADLINE_S = 20; // a Settle may wait on three node-to-node calls of up to 5 s each
const READ_DEADLINE_S = 10;
const RESENDS = 2;
const RESEND_CODES = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]);
const PRINCIPAL_HEADER = 'x-yidi-principal'; // read only by a node run insecure for development

/** A certificate folder lacking a file, or a repository lacking the .proto files. */
class SetupError extends Error {}

/** The SettlementService client class, loaded with the national field names and int64 as strings. */
function settlementService(repo) {
  const file = path.join(repo, 'protos', 'yidi', 'settlement', 'v1', 'settlement_service.proto');
  if (!fs.existsSync(file)) throw new SetupError(`no yidi protos at ${file}`);
  const definition = protoLoader.loadSync(file, {
    includeDirs: [path.join(repo, 'protos'), path.join(repo, 'third_party', 'googleapis')],
    keepCase: true, // the national field names, as in the .proto files
    longs: String, // int64 fen arrive as decimal strings, never as lossy numbers
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).yidi.settlement.v1.SettlementService;
}

/** mTLS as the institution: the federation's CA, and the institution's own certificate and key. */
function institutionCredentials(certs, code) {
  const read = (...parts) => {
    const file = path.join(certs, ...parts);
    if (!fs.existsSync(file)) throw new SetupError(`missing ${file}`);
    return fs.readFileSync(file);
  };
  return grpc.credentials.createSsl(
    read('ca.pem'),
    read('institutions', `${code}.key`),
    read('institutions', `${code}.pem`),
  );
}

class NodeConnection {
  /**
   * A channel to ``address`` as institution ``code``: with its certificate from ``certs``, or,
   * when ``certs`` is null, in plaintext naming the institution in the node's development header.
   */
  constructor({ address, certs, code, repo }) {
    const Service = settlementService(repo);
    this.rpcTypes = loadRpcTypes([path.join(repo, 'third_party', 'googleapis')]);
    this.metadata = new grpc.Metadata();
    if (certs) {
      this.client = new Service(address, institutionCredentials(certs, code));
    } else {
      this.metadata.set(PRINCIPAL_HEADER, `institution/${code}`);
      this.client = new Service(address, grpc.credentials.createInsecure());
    }
  }

  /** A call that changes nothing (VerifyPerson, PreSettle): simply called again if need be. */
  read(method, request) {
    return this.#unary(method, request, READ_DEADLINE_S);
  }

  /**
   * A mutating call: when its answer is lost, or the node could not reach another node yet,
   * the SAME request (same request_id) is sent again: the node applies it once. A refusal is final.
   */
  async send(method, request) {
    for (let resends = 0; ; resends += 1) {
      try {
        return await this.#unary(method, request, MUTATING_DEADLINE_S);
      } catch (error) {
        const { reason } = this.refusal(error);
        if (resends >= RESENDS || !RESEND_CODES.has(error.code) || reason === 'INSTITUTION_SUSPENDED') throw error;
        console.log(`  no answer (${grpc.status[error.code]} ${reason}); resending the same request_id`);
        await sleep(1000 * 2 ** resends);
      }
    }
  }

  /** A failed call's code, ErrorInfo reason and other details (see refusal.js). */
  refusal(error) {
    return describeRefusal(error, this.rpcTypes);
  }

  close() {
    this.client.close();
  }

  #unary(method, request, deadlineSeconds) {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + deadlineSeconds * 1000;
      this.client[method](request, this.metadata, { deadline }, (error, response) =>
        error ? reject(error) : resolve(response));
    });
  }
}

module.exports = { NodeConnection, SetupError };
