// A second process holding SQLite's write lock: one in this process could not let go while a
// synchronous busy wait here holds the thread.

/** Another process takes the write lock, holds it for `holdMs`, and then commits; resolves once it holds it. */
export async function lockFromAnotherProcess(path: string, holdMs: number): Promise<Bun.Subprocess> {
  const child = Bun.spawn(
    [
      process.execPath,
      '-e',
      `const { Database } = require('bun:sqlite'); const db = new Database(${JSON.stringify(path)}); db.exec('BEGIN IMMEDIATE'); console.log('locked'); Bun.sleepSync(${holdMs}); db.exec('COMMIT');`,
    ],
    { stdout: 'pipe', stderr: 'inherit' },
  );
  const reader = child.stdout.getReader();
  let got = '';
  while (!got.includes('locked')) {
    const { value, done } = await reader.read();
    if (done) throw new Error('the locking process ended before it held the lock');
    got += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return child;
}
