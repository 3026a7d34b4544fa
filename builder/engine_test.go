package builder

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestEngineErrorsPassThrough provokes real engine errors and checks that the user sees the
// engine's own message. Under Podman an unknown container user used to surface as "attach to
// builder container: unable to upgrade to tcp, received 409": Podman prepares the container
// when a client attaches, and the client library drops the 409's body, which held the reason.
func TestEngineErrorsPassThrough(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	label := fmt.Sprintf("engine-errors-%d", os.Getpid())
	for _, tc := range []struct {
		name string
		spec runSpec
		want string // the engine's own words (both engines use them)
	}{
		{"unknown user", runSpec{image: tenv.imageID, user: "ipa-oci-no-such-user"},
			"unable to find user ipa-oci-no-such-user: no matching entries in passwd file"},
		{"unknown image", runSpec{image: "ipa-oci/no-such-image:" + label}, "no such image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.phase, spec.cmd, spec.network = "fetch", []string{"true"}, networkNone
			spec.labels = map[string]string{LabelManaged: "true", LabelOutput: label}
			_, err := runContainer(ctx, tenv.cli, spec, discardSink())
			if err == nil {
				t.Fatal("the container ran")
			}
			t.Logf("%s: %v", tenv.engine, err)
			if msg := strings.ToLower(err.Error()); !strings.Contains(msg, tc.want) || strings.Contains(msg, "409") || strings.Contains(msg, "upgrade") {
				t.Errorf("error %q: want the engine's %q, not the client's attach status", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "fetch phase: ") {
				t.Errorf("error %q does not name the phase", err)
			}
			assertNoContainers(t, label)
		})
	}
}
