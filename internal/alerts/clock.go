package alerts

import "time"

// HeaderSentAt is the request header in which a sender gives its own clock
// when it posts a batch (RFC 3339, nanoseconds). Central compares it with
// its clock to learn how far the sender's clock is off, and counts the
// batch's occurrences in the timeline at central's time of each (a sender
// whose clock is behind would otherwise fill past buckets, one ahead
// future ones). The alerts keep the times the sender gave.
const HeaderSentAt = "X-Bulwark-Sent-At"

// MaxClockSkew bounds the clock difference central corrects for: beyond
// it the header is taken as wrong, not the clock (a week).
const MaxClockSkew = 7 * 24 * time.Hour

// minClockSkew is the difference below which nothing is corrected: network
// latency and ordinary NTP drift, well inside a timeline bucket.
const minClockSkew = 30 * time.Second

// SentAt is the HeaderSentAt value for the sender's clock reading now.
func SentAt(now time.Time) string {
	return now.UTC().Format(time.RFC3339Nano)
}

// ClockSkew is how far central's clock (now) is ahead of the sender's, from
// a request's HeaderSentAt value v: add it to the sender's times to get central's.
// Zero when the header is absent, unreadable, beyond MaxClockSkew, or the
// difference is too small to matter (under 30 s).
func ClockSkew(v string, now time.Time) time.Duration {
	if v == "" || len(v) > 64 {
		return 0
	}
	sent, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return 0
	}
	d := now.Sub(sent)
	if d > MaxClockSkew || d < -MaxClockSkew || (d < minClockSkew && d > -minClockSkew) {
		return 0
	}
	return d
}
