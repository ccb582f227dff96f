package ledger

import (
	"fmt"
	"time"
)

// Humanize says a duration the way a person would: "3 hours", "1 minute",
// "less than a second". It rounds to the largest unit, as seed 001's
// "distance of time in words" does.
func Humanize(d time.Duration) string {
	if d < time.Second {
		return "less than a second"
	}
	units := []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "day"}, {time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}}
	for _, u := range units {
		if d >= u.d {
			n := int64((d + u.d/2) / u.d)
			if n == 1 {
				return "1 " + u.name
			}
			return fmt.Sprintf("%d %ss", n, u.name)
		}
	}
	return "less than a second"
}
