const weekdays = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const months = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

function pad(value: number, width = 2, fill = '0'): string {
  return String(value).padStart(width, fill);
}

function dayOfYear(date: Date): number {
  const start = new Date(date.getFullYear(), 0, 1);
  const startUtc = Date.UTC(start.getFullYear(), start.getMonth(), start.getDate());
  const dateUtc = Date.UTC(date.getFullYear(), date.getMonth(), date.getDate());
  return (dateUtc - startUtc) / 86_400_000 + 1;
}

/**
 * Python's `datetime.strftime` in the C locale, in local time, for the directives chat templates use: `%a %A %b %B
 * %d %e %H %I %j %m %M %p %S %y %Y %%`, plus glibc's `%-d` / `%-m` / `%-H` / `%-I` / `%-M` / `%-S` (no padding).
 * Unknown directives are left as they are (Python on glibc does the same).
 */
export function strftime(date: Date, format: string): string {
  return format.replace(/%(-?)([a-zA-Z%])/g, (directive, noPad: string, code: string) => {
    const num = (value: number, width = 2) => (noPad === '-' ? String(value) : pad(value, width));
    const hour12 = date.getHours() % 12 === 0 ? 12 : date.getHours() % 12;
    switch (code) {
      case 'a':
        return weekdays[date.getDay()]!.slice(0, 3);
      case 'A':
        return weekdays[date.getDay()]!;
      case 'b':
      case 'h':
        return months[date.getMonth()]!.slice(0, 3);
      case 'B':
        return months[date.getMonth()]!;
      case 'd':
        return num(date.getDate());
      case 'e':
        return pad(date.getDate(), 2, ' ');
      case 'H':
        return num(date.getHours());
      case 'I':
        return num(hour12);
      case 'j':
        return num(dayOfYear(date), 3);
      case 'm':
        return num(date.getMonth() + 1);
      case 'M':
        return num(date.getMinutes());
      case 'p':
        return date.getHours() < 12 ? 'AM' : 'PM';
      case 'S':
        return num(date.getSeconds());
      case 'y':
        return num(date.getFullYear() % 100);
      case 'Y':
        return String(date.getFullYear());
      case '%':
        return '%';
      default:
        return directive;
    }
  });
}
