package errkind

import (
	"errors"
	"fmt"
	"testing"
)

func TestMark(t *testing.T) {
	kind, other := errors.New("not found"), errors.New("digest mismatch")
	cause := errors.New("connection refused")
	err := Mark(kind, "tag %s not found: %w", "v1", cause)
	if err.Error() != "tag v1 not found: connection refused" || !errors.Is(err, kind) || !errors.Is(err, cause) || errors.Is(err, other) {
		t.Fatalf("Mark: %q, is kind %v, is cause %v", err, errors.Is(err, kind), errors.Is(err, cause))
	}
	if wrapped := fmt.Errorf("pull: %w", err); !errors.Is(wrapped, kind) {
		t.Fatalf("the kind is lost when wrapped: %v", wrapped)
	}
}
