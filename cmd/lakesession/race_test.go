//go:build race

package main_test

// raceEnabled is true when the tests are built with -race.
const raceEnabled = true
