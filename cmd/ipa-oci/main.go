// Command ipa-oci builds Ironic Python Agent ramdisks with Buildroot, publishes them to OCI
// registries and pulls them onto PXE/HTTP boot servers with every digest verified.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipa-oci:", withFlagHint(err))
		os.Exit(exitCode(err))
	}
}
