// Command registry is CNCF Distribution's registry server (github.com/distribution/distribution/v3,
// pinned in go.mod) with only what the tests use: the filesystem and in-memory storage drivers
// and htpasswd authentication. Upstream's cmd/registry also links the Azure, GCS and S3 drivers,
// which nearly double a cold build (≈340 CPU-seconds against ≈190 here) and which no test runs.
// The server code, configuration format and HTTP API are Distribution's own.
package main

import (
	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

func main() {
	// Like upstream's main: RootCmd reports its own errors and exits non-zero.
	_ = registry.RootCmd.Execute()
}
