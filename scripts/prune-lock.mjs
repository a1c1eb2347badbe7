// The npm registry reachable from our machines does not serve msgpackr-extract's macOS,
// Windows and ARM binaries, so `npm install` records them as wanted but cannot lock them,
// and `npm ci` then refuses the lockfile. They are optional native accelerators of msgpackr
// (pure JS is used without them). Run `npm run lock:prune` after changing dependencies.
import { readFileSync, writeFileSync } from 'node:fs';

const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
for (const [path, entry] of Object.entries(lock.packages)) {
  for (const field of ['optionalDependencies']) {
    for (const name of Object.keys(entry[field] ?? {})) {
      if (!lock.packages[`node_modules/${name}`]) {
        delete entry[field][name];
        console.log(`pruned ${name} (wanted by ${path}, not in the registry)`);
      }
    }
  }
}
writeFileSync('package-lock.json', `${JSON.stringify(lock, null, 2)}\n`);
