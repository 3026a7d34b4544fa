package testenv

import (
	"net/http"
	"strings"
	"testing"
)

// TestStartRegistryTLS: the registry answers over HTTPS to a client that trusts the test CA
// only, and refuses a client that does not know the CA.
func TestStartRegistryTLS(t *testing.T) {
	ca := NewCA(t)
	reg := StartRegistryTLS(t, ca, "")
	resp, err := ca.Client().Get("https://" + reg.Host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/ over TLS: %s", resp.Status)
	}
	if _, err := http.Get("https://" + reg.Host + "/v2/"); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("a client without the test CA: err = %v, want unknown authority", err)
	}
	if _, err := http.Get("http://" + reg.Host + "/v2/"); err == nil {
		if resp, _ := http.Get("http://" + reg.Host + "/v2/"); resp != nil && resp.StatusCode == http.StatusOK {
			t.Fatal("the TLS registry answered plain HTTP with 200")
		}
	}
}
