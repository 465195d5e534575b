#!/usr/bin/env node
'use strict';
// A hospital information system (HIS) settling one visit through a yidi node, in Node.js.
//
// It loads the .proto files straight from the yidi repository (protos/ and
// third_party/googleapis/) with @grpc/proto-loader, authenticates as an institution with its
// client certificate (mutual TLS), and plays the national flow: 1101 VerifyPerson → 2201
// RegisterVisit → 2204 UploadFeeItems → 2206 PreSettle → 2207 Settle. It prints the
// settlement slip and exits 0; a refusal prints the gRPC code and the stable reason from
// google.rpc.ErrorInfo and exits 1. The Python twin is examples/his_client.py.

const path = require('node:path');
const { parseArgs } = require('node:util');

const { NodeConnection, SetupError } = require('./lib/connection');
const { RequestJournal } = require('./lib/journal');
const { lineFen, yuan } = require('./lib/money');

const REFUSED = 1;
const UNUSABLE = 2;
const CHINA_OFFSET_MS = 8 * 3600 * 1000;
// The worked example's diabetes drugs: national code, quantity, unit price in yuan (decimal strings).
const BILL = [
  ['XA10BFA022A001010100001', '1', '32.52'],
  ['XA10BXR023A001010100002', '1', '31.77'],
];
const PAY_LOCATIONS = { 3: 'in-province, another city', 4: 'cross-province' };

const USAGE = `usage: node his_client.js [options]

  --address HOST:PORT     the institution's own node (env YIDI_ADDRESS; default 127.0.0.1:50101,
                          the Beijing node of \`yidi demo --keep-running\`)
  --certs DIR             certificate folder: DIR/ca.pem, DIR/institutions/<code>.pem and .key
                          (env YIDI_CERTS)
  --institution CODE      this hospital's fixmedins_code, naming its certificate
                          (env YIDI_INSTITUTION; default H11010100001)
  --act-as CODE           the fixmedins_code sent in the envelope (default: --institution); a node
                          refuses a code other than the certificate's with PERMISSION_DENIED
  --certno NUMBER         the patient's resident ID card number (default 131000195402270170,
                          the demo's Langfang retiree filed for Beijing)
  --insured-region CODE   the patient's insured region (default 131000)
  --requests FILE         keep the mutating requests in FILE: when it exists they are resent
                          as stored (same request_id, same answer), else written there first
  --skip-presettle        go straight to Settle
  --repo DIR              the yidi repository holding protos/ and third_party/googleapis/
                          (default: two folders up from this script)
  --insecure              plaintext, no client certificate: local development only
  -h, --help              this text

exit status: 0 settled, 1 refused by the node (or unreachable), 2 unusable arguments or files`;

function options(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      address: { type: 'string', default: process.env.YIDI_ADDRESS || '127.0.0.1:50101' },
      certs: { type: 'string', default: process.env.YIDI_CERTS || '' },
      institution: { type: 'string', default: process.env.YIDI_INSTITUTION || 'H11010100001' },
      'act-as': { type: 'string', default: '' },
      certno: { type: 'string', default: '131000195402270170' },
      'insured-region': { type: 'string', default: '131000' },
      requests: { type: 'string', default: '' },
      'skip-presettle': { type: 'boolean', default: false },
      repo: { type: 'string', default: path.resolve(__dirname, '..', '..') },
      insecure: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return values;
  if (!/^[HP]\d{11}$/.test(values.institution)) {
    throw new UsageError(`not an institution code: ${values.institution}`);
  }
  if (!values.insecure && !values.certs) {
    throw new UsageError('give --certs DIR (or --insecure for a plaintext development node)');
  }
  return { ...values, actAs: values['act-as'] || values.institution };
}

class UsageError extends Error {}

/** Wall-clock parts in China (UTC+8), whatever the machine's time zone. */
function chinaParts(ms) {
  const d = new Date(ms + CHINA_OFFSET_MS);
  const two = (n) => String(n).padStart(2, '0');
  return {
    date: { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() },
    compact: `${d.getUTCFullYear()}${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}`
      + `${two(d.getUTCHours())}${two(d.getUTCMinutes())}${two(d.getUTCSeconds())}`,
  };
}

function timestamp(ms) {
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
}

/** msgid = the institution's 12-character code + yyyyMMddHHmmss (China) + a 4-digit sequence: 30 characters. */
function messageIds(code) {
  let sequence = Math.floor(Math.random() * 10000);
  return () => `${code}${chinaParts(Date.now()).compact}${String(sequence++ % 10000).padStart(4, '0')}`;
}

async function settleOneVisit(args, node) {
  const now = Date.now();
  const today = chinaParts(now).date;
  const nextId = messageIds(args.actAs);
  const journal = new RequestJournal(args.requests || null);
  const credential = { mdtrt_cert_type: '02', mdtrt_cert_no: args.certno }; // 02: resident ID card
  const envelope = (insured = '') => ({
    fixmedins_code: args.actAs,
    mdtrtarea_admvs: args.actAs.slice(1, 7), // an institution code's digits 2-7 are its region
    insuplc_admdvs: insured,
    opter_type: '1',
    opter: 'window-01',
    inf_time: timestamp(now),
  });

  // 1101: who is the patient, and may they settle here today for chronic-disease outpatient care?
  const { person } = await node.read('VerifyPerson', {
    envelope: envelope(),
    credential,
    insuplc_admdvs: args['insured-region'],
    service_date: today,
    med_type: '14',
    chronic_disease: 'M01600',
  });
  console.log(`patient ${person.psn_name_masked} ${person.certno_masked}, psn_no ${person.psn_no}, `
    + `insured in ${person.insuplc_admdvs}`);

  // 2201: open the visit; its mdtrt_id is derived from this request_id.
  const register = await journal.request('register', () => ({
    request_id: nextId(),
    envelope: envelope(person.insuplc_admdvs),
    psn_no: person.psn_no,
    insutype: person.insutype,
    credential,
    facts: {
      med_type: '14',
      service_date: today,
      institution_level: '3',
      diagnoses: ['E11.900'],
      chronic_disease: 'M01600',
      fixmedins_code: args.actAs,
      mdtrtarea_admvs: args.actAs.slice(1, 7),
    },
    ipt_otp_no: `MZ${chinaParts(now).compact}${String(now % 1000).padStart(3, '0')}`,
    begin_time: timestamp(now),
  }));
  const { visit } = await node.send('RegisterVisit', register.request);
  console.log(`visit ${visit.mdtrt_id}${register.resent ? ' (stored request resent)' : ''}`);

  // 2204: the fee lines; each line's amount is integer fen, cnt × pric rounded half up.
  const upload = await journal.request('upload', () => ({
    request_id: nextId(),
    envelope: envelope(person.insuplc_admdvs),
    mdtrt_id: visit.mdtrt_id,
    items: BILL.map(([code, cnt, pric], index) => ({
      feedetl_sn: String(index + 1).padStart(4, '0'),
      med_list_codg: code,
      cnt,
      pric,
      det_item_fee_sumamt_fen: String(lineFen(cnt, pric)),
      fee_ocur_time: timestamp(now),
    })),
  }));
  const uploaded = await node.send('UploadFeeItems', upload.request);
  for (const item of uploaded.results) {
    console.log(`  line ${item.feedetl_sn} ${item.med_list_codg}: class ${item.chrgitm_lv || 'not listed'}`);
  }
  const totalFen = upload.request.items.reduce((sum, line) => sum + BigInt(line.det_item_fee_sumamt_fen), 0n);

  // 2206 then 2207. PreSettle changes nothing; a stored Settle is resent as is (the visit may be settled).
  const settle = await journal.request('settle', async () => {
    if (!args['skip-presettle']) {
      const { result } = await node.read('PreSettle', {
        envelope: envelope(person.insuplc_admdvs),
        mdtrt_id: visit.mdtrt_id,
        medfee_sumamt_fen: String(totalFen),
      });
      console.log(`pre-settlement: the patient would pay ${yuan(result.amounts.psn_part_amt_fen)}`);
    }
    return {
      request_id: nextId(),
      envelope: envelope(person.insuplc_admdvs),
      mdtrt_id: visit.mdtrt_id,
      medfee_sumamt_fen: String(totalFen),
    };
  });
  const { settlement } = await node.send('Settle', settle.request);
  if (settle.resent) console.log('settle: stored request resent; the node answered with the original settlement');
  printSlip(settlement);
}

function printSlip(settlement) {
  const { amounts, fund_lines: fundLines, explanation } = settlement.result;
  const setlTime = new Date(Number(settlement.setl_time.seconds) * 1000 + CHINA_OFFSET_MS)
    .toISOString().replace('T', ' ').slice(0, 19);
  const payLocation = PAY_LOCATIONS[settlement.pay_loc] ?? `pay_loc ${settlement.pay_loc}`;
  const rows = [
    ['setl_id', settlement.setl_id],
    ['medins_setl_id', settlement.medins_setl_id],
    ['mdtrt_id', settlement.mdtrt_id],
    ['institution', settlement.fixmedins_code],
    ['psn_no', settlement.psn_no],
    ['regions', `insured ${settlement.insuplc_admdvs} -> treated ${settlement.mdtrtarea_admvs} (${payLocation})`],
    ['setl_time', `${setlTime} (China)`],
    ['total (medfee_sumamt)', yuan(amounts.medfee_sumamt_fen)],
    ['fund pays (fund_pay_sumamt)', yuan(amounts.fund_pay_sumamt_fen)],
    ['personal pays (psn_part_amt)', yuan(amounts.psn_part_amt_fen)],
    ['  account (acct_pay)', yuan(amounts.acct_pay_fen)],
    ['  cash (psn_cash_pay)', yuan(amounts.psn_cash_pay_fen)],
    ...fundLines.map((line) => [
      `  fund ${line.fund_pay_type}`,
      `${yuan(line.fund_payamt_fen)} ${line.fund_pay_type_name}`,
    ]),
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  console.log('\nsettlement slip (结算单), amounts in yuan');
  for (const [label, value] of rows) console.log(`  ${label.padEnd(width)}  ${value}`);
  console.log('explanation (结算说明)');
  for (const line of explanation?.lines ?? []) console.log(`  ${line}`);
}

function printRefusal(refusal) {
  console.log(refusal.reason
    ? `refused: ${refusal.code} ${refusal.reason}`
    : `failed: ${refusal.code} (no ErrorInfo: a transport failure, outcome unknown for a mutating call)`);
  const metadata = Object.entries(refusal.metadata).map(([key, value]) => `${key}=${value}`).join(' ');
  if (metadata) console.log(`  metadata ${metadata}`);
  for (const violation of refusal.violations) console.log(`  field ${violation}`);
  if (refusal.localized) console.log(`  ${refusal.localized}`);
  console.log(`  ${refusal.message}`);
}

async function main(argv) {
  let args;
  let node;
  try {
    args = options(argv);
    if (args.help) {
      console.log(USAGE);
      return 0;
    }
    node = new NodeConnection({
      address: args.address,
      certs: args.insecure ? null : args.certs,
      code: args.institution,
      repo: args.repo,
    });
  } catch (error) {
    const unusable = error instanceof UsageError || error instanceof SetupError
      || String(error.code).startsWith('ERR_PARSE_ARGS');
    if (!unusable) throw error;
    console.error(`his_client: ${error.message} (see --help)`);
    return UNUSABLE;
  }
  if (args.insecure) console.error('warning: --insecure: plaintext, no client certificate; local development only');
  console.log(`node ${args.address} ${args.insecure ? 'in plaintext' : 'over mTLS'} as ${args.institution}`
    + (args.actAs === args.institution ? '' : ` acting for ${args.actAs}`));
  try {
    await settleOneVisit(args, node);
    return 0;
  } catch (error) {
    if (typeof error.code !== 'number') throw error; // not a gRPC status: a defect, shown with its stack
    printRefusal(node.refusal(error));
    return REFUSED;
  } finally {
    node.close();
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
