//go:build race

package inference_test

// raceEnabled is true under the race detector, where the plain Go reference
// forward pass runs many times slower.
const raceEnabled = true
