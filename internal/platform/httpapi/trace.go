package httpapi

import (
	"crypto/rand"
	"encoding/hex"
)

// ContinueTrace returns the traceparent of a new span (W3C Trace Context
// level 1, version 00): in incoming's trace, keeping its flags, when
// incoming is a valid traceparent; else in a new, sampled trace.
func ContinueTrace(incoming string) string {
	var b [16 + 8]byte
	_, _ = rand.Read(b[:])
	trace, flags := hex.EncodeToString(b[:16]), "01"
	if t, f, ok := parseTraceParent(incoming); ok {
		trace, flags = t, f
	}
	return "00-" + trace + "-" + hex.EncodeToString(b[16:]) + "-" + flags
}

// parseTraceParent splits a traceparent "vv-<32 hex>-<16 hex>-ff" into
// its trace ID and flags. Per the specification a version other than 00
// is read by its first four fields, the all-zero IDs and version ff are
// invalid, and hex must be lower case.
func parseTraceParent(s string) (trace, flags string, ok bool) {
	if len(s) < 55 || (len(s) > 55 && (s[:2] == "00" || s[55] != '-')) {
		return "", "", false
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' || s[:2] == "ff" {
		return "", "", false
	}
	version, trace, parent, flags := s[:2], s[3:35], s[36:52], s[53:55]
	for _, part := range []string{version, trace, parent, flags} {
		for i := 0; i < len(part); i++ {
			if c := part[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return "", "", false
			}
		}
	}
	if trace == "00000000000000000000000000000000" || parent == "0000000000000000" {
		return "", "", false
	}
	return trace, flags, true
}
