//go:build race

package admission

// raceEnabled: the race detector multiplies memory and time; the load
// test then checks correctness only.
const raceEnabled = true
