'use strict';
// Money as the wire carries it: int64 fen, here as BigInt. Never a JavaScript number:
// a double cannot hold every int64, and 0.1 + 0.2 is not 0.3.

const DECIMAL = /^([+-]?)(\d+)(?:\.(\d+))?$/;

/** A decimal string ("32.52") as an exact fraction: { units: BigInt, scale: BigInt power of ten }. */
function parseDecimal(text) {
  const match = DECIMAL.exec(String(text));
  if (!match) throw new RangeError(`not a decimal number: ${JSON.stringify(text)}`);
  const [, sign, whole, fraction = ''] = match;
  const units = BigInt(whole + fraction) * (sign === '-' ? -1n : 1n);
  return { units, scale: 10n ** BigInt(fraction.length) };
}

/** Quantity times unit price (decimal strings, price in yuan) rounded half up to the fen, as the node does. */
function lineFen(cnt, pric) {
  const quantity = parseDecimal(cnt);
  const price = parseDecimal(pric);
  const numerator = quantity.units * price.units * 100n;
  const denominator = quantity.scale * price.scale;
  const magnitude = ((numerator < 0n ? -numerator : numerator) * 2n + denominator) / (2n * denominator);
  return numerator < 0n ? -magnitude : magnitude; // half up = half away from zero, as Decimal's ROUND_HALF_UP
}

/** Fen (BigInt, or an int64 decimal string as proto-loader gives it) as yuan with two decimals: -1234n → "-12.34". */
function yuan(fen) {
  const value = BigInt(fen);
  const magnitude = value < 0n ? -value : value;
  const cents = String(magnitude % 100n).padStart(2, '0');
  return `${value < 0n ? '-' : ''}${magnitude / 100n}.${cents}`;
}

module.exports = { lineFen, parseDecimal, yuan };
