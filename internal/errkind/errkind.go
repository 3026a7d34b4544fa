// Package errkind gives a complete error message a kind that callers recognise with
// errors.Is: the library says what went wrong and what to change in its own terms, and a
// front end (cmd/ipa-oci/hints.go) adds its own words for the kind, e.g. the flag that
// changes the outcome. builder/ and images/ share it.
package errkind

import "fmt"

// Mark returns the error fmt.Errorf(format, args...) that also matches kind with errors.Is: a
// complete message that callers can still recognise by kind (a "not found" that needs no
// ": not found" appended; a failure the CLI adds a flag hint to).
func Mark(kind error, format string, args ...any) error {
	return &markedError{err: fmt.Errorf(format, args...), kind: kind}
}

type markedError struct{ err, kind error }

func (e *markedError) Error() string        { return e.err.Error() }
func (e *markedError) Unwrap() error        { return e.err }
func (e *markedError) Is(target error) bool { return target == e.kind }
