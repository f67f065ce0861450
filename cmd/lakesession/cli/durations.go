package cli

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ageUnits are the units of an age. A bare "m" is not one: in a retention
// age it could mean minutes or months, and the difference is whether a
// prune deletes a day's sessions or half a year's.
var ageUnits = map[string]time.Duration{
	"w":   7 * 24 * time.Hour,
	"d":   24 * time.Hour,
	"h":   time.Hour,
	"min": time.Minute,
	"s":   time.Second,
}

const ageExamples = "30d, 12h, 2w, 1d12h or 90min"

// ambiguousMinutes finds an "m" unit: after a number, and not the start of
// "ms" or "min".
var ambiguousMinutes = regexp.MustCompile(`[0-9.]m([^a-z]|$)`)

// parseAge reads a positive age such as 30d, 12h, 2w, 1d12h or 90min
// (whole numbers of weeks, days, hours, minutes and seconds), or what
// time.ParseDuration reads without an "m" (1.5h, 500ms). An "m" unit is
// refused with an error that asks for min or d.
func parseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty: give an age such as " + ageExamples)
	}
	if ambiguousMinutes.MatchString(s) {
		return 0, errors.New(`"m" could mean minutes or months: write min for minutes (90min), or the age in days or weeks for months (180d, 26w)`)
	}
	d, err := parseUnits(s)
	if err != nil {
		var perr error
		d, perr = time.ParseDuration(s)
		if perr != nil {
			return 0, fmt.Errorf("not an age: give a number and a unit (w, d, h, min, s), such as %s", ageExamples)
		}
	}
	if d <= 0 {
		return 0, errors.New("not positive: give an age such as 30d")
	}
	return d, nil
}

func parseUnits(s string) (time.Duration, error) {
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		j := i
		for j < len(s) && s[j] >= 'a' && s[j] <= 'z' {
			j++
		}
		if i == 0 || j == i {
			return 0, errors.New("want a number followed by a unit")
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			return 0, err
		}
		unit, ok := ageUnits[s[i:j]]
		if !ok {
			return 0, fmt.Errorf("unknown unit %q", s[i:j])
		}
		if n > int64(math.MaxInt64/unit) || total > math.MaxInt64-time.Duration(n)*unit {
			return 0, errors.New("too long")
		}
		total += time.Duration(n) * unit
		s = s[j:]
	}
	return total, nil
}

// parseSince reads a point in time: RFC 3339, a date (midnight UTC), or an
// age before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	d, err := parseAge(s)
	if err == nil {
		return now.Add(-d), nil
	}
	if ambiguousMinutes.MatchString(s) {
		return time.Time{}, err
	}
	return time.Time{}, errors.New("give an RFC 3339 time (2026-06-01T00:00:00Z), a date (2026-06-01, midnight UTC) or an age (7d, 12h)")
}
