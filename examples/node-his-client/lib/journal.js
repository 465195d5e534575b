'use strict';
// The mutating requests this HIS sent, kept so that a retry resends the very same bytes.
// A node answers a repeated request_id with its original answer (same mdtrt_id, same setl_id)
// and never applies it twice; a new request_id would be a new operation.

const fs = require('node:fs');

class RequestJournal {
  /** Requests stored in ``file`` (none yet when it does not exist); ``file`` null keeps them in memory only. */
  constructor(file) {
    this.file = file;
    this.requests = file && fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {};
  }

  /**
   * The request of ``step``: the stored one when there is one (``resent`` true), else ``build()``'s,
   * written down before it is sent so that a crash between sending and answering can resend it.
   */
  async request(step, build) {
    if (step in this.requests) return { request: this.requests[step], resent: true };
    const request = await build();
    this.requests[step] = request;
    if (this.file) {
      fs.writeFileSync(`${this.file}.tmp`, `${JSON.stringify(this.requests, null, 2)}\n`);
      fs.renameSync(`${this.file}.tmp`, this.file);
    }
    return { request, resent: false };
  }
}

module.exports = { RequestJournal };
