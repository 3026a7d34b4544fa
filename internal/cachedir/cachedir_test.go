package cachedir

import "testing"

func TestDirRule(t *testing.T) {
	for _, c := range []struct{ cache, xdg, home, want string }{
		{"/srv/c", "/x", "/h", "/srv/c"},            // IPA_OCI_CACHE wins
		{"", "/x", "/h", "/x/ipa-oci"},              // then XDG_CACHE_HOME
		{"", "relative", "/h", "/h/.cache/ipa-oci"}, // a relative XDG_CACHE_HOME is ignored
		{"", "", "/h", "/h/.cache/ipa-oci"},
	} {
		t.Setenv("IPA_OCI_CACHE", c.cache)
		t.Setenv("XDG_CACHE_HOME", c.xdg)
		t.Setenv("HOME", c.home)
		if got, err := Dir(); err != nil || got != c.want {
			t.Errorf("IPA_OCI_CACHE=%q XDG_CACHE_HOME=%q HOME=%q: Dir() = %q, %v; want %q", c.cache, c.xdg, c.home, got, err, c.want)
		}
	}
	t.Setenv("IPA_OCI_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "")
	if got, err := Dir(); err == nil || err.Error() != "no cache directory: set IPA_OCI_CACHE (or HOME)" {
		t.Errorf("nothing set: Dir() = %q, %v; want the error", got, err)
	}
}
