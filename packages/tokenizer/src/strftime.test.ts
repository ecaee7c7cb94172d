import { describe, expect, test } from 'vitest';
import { strftime } from './strftime.js';

describe('strftime (C locale, local time)', () => {
  const date = new Date(2024, 6, 5, 14, 7, 9);

  test('the directives chat templates use', () => {
    expect(strftime(date, '%d %b %Y')).toBe('05 Jul 2024');
    expect(strftime(date, '%B %-d, %Y')).toBe('July 5, 2024');
    expect(strftime(date, '%A %a %m/%d/%y')).toBe('Friday Fri 07/05/24');
    expect(strftime(date, '%H:%M:%S %I %p')).toBe('14:07:09 02 PM');
    expect(strftime(date, '%j|%e|%%|%Q')).toBe('187| 5|%|%Q');
  });

  test('midnight and noon on the 12-hour clock', () => {
    expect(strftime(new Date(2024, 0, 1, 0, 0), '%I %p %j')).toBe('12 AM 001');
    expect(strftime(new Date(2024, 11, 31, 12, 0), '%I %p %j')).toBe('12 PM 366');
  });
});
