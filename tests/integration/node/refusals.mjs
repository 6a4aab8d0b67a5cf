// basic-ftp through the gateway: transfers the backend refuses, each followed by commands
// that must get their own replies. Prints one JSON object; the test judges it.
// Usage: node refusals.mjs PORT CA_FILE REMOTE_DIR USER PASSWORD
import { readFileSync } from "node:fs";
import { Readable, Writable } from "node:stream";
import { Client } from "basic-ftp";

const [port, caFile, dir, user, password] = process.argv.slice(2);
const client = new Client(15000);
const out = { refusals: [], steps: [] };

async function inStep() {
  const noop = await client.send("NOOP");
  const type = await client.send("TYPE I");
  const pwd = await client.pwd();
  return { noop: noop.code, type: type.code, pwd };
}

async function refusal(what, action) {
  try {
    await action();
    out.refusals.push({ what, code: 0 });
  } catch (err) {
    out.refusals.push({ what, code: err.code ?? -1, message: String(err.message ?? err) });
  }
  out.steps.push({ what, ...(await inStep()) });
}

const sink = () => new Writable({ write(chunk, enc, done) { done(); } });

try {
  await client.access({
    host: "127.0.0.1", port: Number(port), user, password, secure: true,
    secureOptions: { ca: readFileSync(caFile), servername: "127.0.0.1" },
  });
  for (let round = 0; round < 2; round++) {
    await refusal("retr_missing", () => client.downloadTo(sink(), `${dir}/no-such-file.bin`));
    await refusal("stor_missing_dir",
      () => client.uploadFrom(Readable.from([Buffer.alloc(1 << 20, 120)]), `${dir}/no-such-dir/up.bin`));
    client.availableListCommands = ["MLSD"];
    await refusal("mlsd", () => client.list(dir));
  }
  const chunks = [];
  await client.downloadTo(new Writable({ write(c, e, d) { chunks.push(c); d(); } }), `${dir}/there.bin`);
  out.there_bytes = Buffer.concat(chunks).length;
  out.quit = (await client.send("QUIT")).code;
} catch (err) {
  out.error = String(err.stack ?? err);
} finally {
  client.close();
}
console.log(JSON.stringify(out));
