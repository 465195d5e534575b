'use strict';
// node --test examples/node-his-client/test: the integer money the client sends and prints.

const assert = require('node:assert/strict');
const test = require('node:test');

const { lineFen, yuan } = require('../lib/money');

test('a line amount is quantity times price, half up to the fen', () => {
  assert.equal(lineFen('1', '32.52'), 3252n);
  assert.equal(lineFen('3', '0.335'), 101n); // 1.005 yuan: half up, not banker's and not float (1.0049999…)
  assert.equal(lineFen('2.5', '0.001'), 0n); // 0.0025 yuan
  assert.equal(lineFen('0.5', '0.01'), 1n); // 0.005 yuan: the half goes up
  assert.equal(lineFen('1.2345', '123456.789012'), 15240741n); // 152407.4060353140 yuan, exactly
  assert.equal(lineFen('-1', '0.005'), -1n); // half away from zero, as Decimal ROUND_HALF_UP
});

test('fen print as yuan with two decimals, beyond the range of a double', () => {
  assert.equal(yuan('0'), '0.00');
  assert.equal(yuan('5'), '0.05');
  assert.equal(yuan(6429n), '64.29');
  assert.equal(yuan('-1540'), '-15.40');
  assert.equal(yuan('9223372036854775807'), '92233720368547758.07');
});

test('malformed decimals are refused, not guessed', () => {
  assert.throws(() => lineFen('1e3', '1'), RangeError);
  assert.throws(() => lineFen('1', '.5'), RangeError);
  assert.throws(() => lineFen('1', ''), RangeError);
});
