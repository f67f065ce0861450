package cli

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ageUnits are the units parseAge accepts beyond time.ParseDuration's.
var ageUnits = map[string]time.Duration{
	"w": 7 * 24 * time.Hour,
	"d": 24 * time.Hour,
	"h": time.Hour,
	"m": time.Minute,
	"s": time.Second,
}

// parseAge reads a positive age such as 30d, 12h, 2w, 1d12h or 90m (whole
// numbers of weeks, days, hours, minutes and seconds), or anything
// time.ParseDuration reads (1.5h, 500ms).
func parseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty: give an age such as 30d, 12h or 90m")
	}
	d, err := parseUnits(s)
	if err != nil {
		var perr error
		d, perr = time.ParseDuration(s)
		if perr != nil {
			return 0, fmt.Errorf("not an age: give a number and a unit, such as 30d, 12h, 2w, 1d12h or 90m")
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
		if i == 0 || i == len(s) {
			return 0, errors.New("want a number followed by a unit")
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			return 0, err
		}
		unit, ok := ageUnits[s[i:i+1]]
		if !ok {
			return 0, fmt.Errorf("unknown unit %q", s[i:i+1])
		}
		if n > int64(math.MaxInt64/unit) || total > math.MaxInt64-time.Duration(n)*unit {
			return 0, errors.New("too long")
		}
		total += time.Duration(n) * unit
		s = s[i+1:]
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
	if d, err := parseAge(s); err == nil {
		return now.Add(-d), nil
	}
	return time.Time{}, errors.New("give an RFC 3339 time (2026-06-01T00:00:00Z), a date (2026-06-01) or an age (7d, 12h)")
}
