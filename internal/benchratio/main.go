package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run reports the benchmarks of the named files, or of stdin when there
// are none, and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var readers []io.Reader
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fmt.Fprintln(stderr, "usage: benchratio [FILE...]   (go test -bench output of package bunstore; stdin when no FILE)")
			return 2
		}
		f, err := os.Open(a)
		if err != nil {
			fmt.Fprintf(stderr, "benchratio: %v\n", err)
			return 2
		}
		defer f.Close()
		readers = append(readers, f)
	}
	if len(readers) == 0 {
		readers = append(readers, stdin)
	}
	r, err := parse(io.MultiReader(readers...))
	if err != nil {
		fmt.Fprintf(stderr, "benchratio: %v\n", err)
		return 2
	}
	if len(r.names) == 0 {
		fmt.Fprintf(stderr, "benchratio: no %s results in the input; run go test -bench . -benchmem ./bunstore/ on a PostgreSQL (see scripts/bench.sh)\n", prefix[:len(prefix)-1])
		return 2
	}
	return report(stdout, r)
}
