// Preloaded into Azurite (`node --require`) by `bench_rescan.py --table-bodies`: its table
// process sends response bodies and reads batch bodies as strings, without a Buffer copy of
// each, so that V8's collections in it stop growing as images x images.
//
// Why (traced 2026-12-05 with `--trace-gc` in the table process, 10,000 images): V8 counts every
// ArrayBuffer's bytes as "external memory", and each 64 MB of it since the last collection
// starts one. 67 of the 68 scavenges of a 10,000-image bench run, and the mark-compacts'
// incremental marking, were started by "external memory pressure", not by the heap filling.
// So Azurite's collections are as many as the bytes it copies into Buffers, and each costs in
// proportion to its heap (the table rows, 3.5 GB at 100,000 images): a week's GC grows as
// images x images. Of the ~2 GB of Buffers the table process made in that run, half were
// response bodies (`new BufferStream(Buffer.from(text))` in TableHandler's insert, query and
// point-read answers) and a quarter the `Buffer.concat` of each batch request
// (`TableBatchUtils.StreamToString`); the last quarter are the socket's own reads.
//
// The change:
// - TableHandler's `new BufferStream_1.default(Buffer.from(X))` (3 places) becomes a stream of
//   the text itself: piped into the HTTP response it is written as a string, which Node encodes
//   into memory V8 does not count. The bytes on the wire are the same.
// - `TableBatchUtils.StreamToString` decodes the chunks as they come (a StringDecoder, so a
//   character split between two chunks is decoded whole) and joins the text, instead of
//   concatenating the chunks into one more Buffer; it takes text chunks too (a sub-response of
//   a batch is now one).
// tests/bench/test_azurite_table_bodies.py compares what Azurite answers with and without it.

"use strict";

const fs = require("fs");
const path = require("path");
const Module = require("module");
const { Readable } = require("stream");
const { StringDecoder } = require("string_decoder");

const LOADED = "acr-scan bench: Azurite table bodies are sent and read as text";
const script = process.argv[1] ? fs.realpathSync(process.argv[1]) : "";
const table = path.join(path.dirname(script), "table");
const handlerFile = path.join(table, "handlers", "TableHandler.js");
const batchUtilsFile = path.join(table, "batch", "TableBatchUtils.js");
const BUFFERED = /new BufferStream_1\.default\(Buffer\.from\((\w+)\)\)/g;
const EXPECTED_BUFFERED = 3;

// A readable stream of one text: what `new BufferStream(Buffer.from(text))` sent, as a string.
class TextBody extends Readable {
  constructor(text) {
    super({ objectMode: true });
    this.text = text;
  }

  _read() {
    if (this.text.length > 0) {
      this.push(this.text);
    }
    this.text = "";
    this.push(null);
  }
}

// The text of a stream of Buffers (UTF-8) or strings.
function streamToString(stream) {
  if (stream === undefined) {
    throw new Error("undefined stream passed to function!");
  }
  const decoder = new StringDecoder("utf8");
  const parts = [];
  return new Promise((resolve, reject) => {
    stream.on("data", (chunk) => parts.push(typeof chunk === "string" ? chunk : decoder.write(chunk)));
    stream.on("error", reject);
    stream.on("end", () => {
      parts.push(decoder.end());
      resolve(parts.join(""));
    });
  });
}

module.exports = { TextBody, streamToString };

if (fs.existsSync(handlerFile) && fs.existsSync(batchUtilsFile)) {
  const compile = Module.prototype._compile;
  const self = JSON.stringify(__filename);
  let handlerDone = false;
  let batchDone = false;
  let announced = false;
  Module.prototype._compile = function (content, filename) {
    if (filename === handlerFile) {
      let replaced = 0;
      const changed = content.replace(BUFFERED, (_, text) => {
        replaced += 1;
        return `new (require(${self}).TextBody)(${text})`;
      });
      if (replaced === EXPECTED_BUFFERED) {
        content = changed;
        handlerDone = true;
      } else {
        // Another Azurite layout: left as it is; the missing line below fails the bench.
        console.log(`acr-scan bench: TableHandler has ${replaced} buffered bodies, not ` +
                    `${EXPECTED_BUFFERED}; its bodies are left as they are`);
      }
    }
    const result = compile.call(this, content, filename);
    if (filename === batchUtilsFile) {
      this.exports.default.StreamToString = streamToString;
      batchDone = true;
    }
    if (handlerDone && batchDone && !announced) {
      announced = true;
      console.log(LOADED);
    }
    return result;
  };
}
