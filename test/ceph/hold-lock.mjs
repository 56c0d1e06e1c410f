// Test fixture, run as `flock [-s] LOCKFILE node hold-lock.mjs`: says "locked"
// once flock holds the lock, and keeps it until its stdin closes (the test
// process that started it ended or released it).
process.stdout.write('locked\n');
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
