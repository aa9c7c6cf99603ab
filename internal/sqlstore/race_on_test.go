//go:build race

package sqlstore

// raceEnabled: the race detector is on, which slows modernc.org/sqlite's
// transpiled C (FTS5 above all) a hundredfold.
const raceEnabled = true
