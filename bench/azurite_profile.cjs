// Preloaded into Azurite (`node --require`) by `bench_rescan.py --azurite-profile DIR`: a CPU
// profile of Azurite's own JavaScript over a window the bench chooses (one timed week).
//
// SIGUSR2 starts V8's sampling profiler through an inspector session of this process (no
// port is opened); the next SIGUSR2 stops it and writes `azurite-<pid>-<n>.cpuprofile`
// (Chrome DevTools' format) to $AZURITE_PROFILE_DIR, then `<same name>.done` once the file is
// whole. `bench/azurite_profile.py` splits a profile by service (queue, table, blob) and
// operation. SIGUSR1 is left alone: Node opens its inspector port on it.

"use strict";

const fs = require("fs");
const inspector = require("inspector");
const path = require("path");

const folder = process.env.AZURITE_PROFILE_DIR;
if (folder) {
  const session = new inspector.Session();
  session.connect();
  let running = false;
  let written = 0;
  process.on("SIGUSR2", () => {
    if (!running) {
      running = true;
      session.post("Profiler.enable", () =>
        session.post("Profiler.setSamplingInterval", { interval: 500 }, () =>
          session.post("Profiler.start")));
      return;
    }
    running = false;
    session.post("Profiler.stop", (error, result) => {
      written += 1;
      const name = path.join(folder, `azurite-${process.pid}-${written}.cpuprofile`);
      if (error) {
        fs.writeFileSync(`${name}.failed`, String(error));
        return;
      }
      fs.writeFileSync(name, JSON.stringify(result.profile));
      fs.writeFileSync(`${name}.done`, "");
    });
  });
  console.log(`acr-scan: azurite_profile.cjs loaded (pid ${process.pid}, SIGUSR2 starts and stops)`);
}
