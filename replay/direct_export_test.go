package replay

import "time"

// SetDirectTimeoutForTest sets how long a direct get waits for its reply
// and returns a function setting it back.
func SetDirectTimeoutForTest(d time.Duration) (restore func()) {
	old := directTimeout
	directTimeout = d
	return func() { directTimeout = old }
}
