package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/ipa-oci/ipa-oci/images/artifact"
	"github.com/spf13/cobra"
)

func newInspectCmd(g *globalOptions) *cobra.Command {
	var (
		asJSON bool
		reg    registryFlags
	)
	cmd := &cobra.Command{
		Use:   "inspect REF",
		Short: "Show an ipa-oci index: digests, platforms, sizes, annotations, referrers, Ironic settings",
		Args:  refArg(),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, ref, err := reg.open(g, cmd, args[0])
			if err != nil {
				return err
			}
			in, err := artifact.Inspect(cmd.Context(), t, ref)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(in)
			}
			printInspection(cmd.OutOrStdout(), in, reg.plainHTTP)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	reg.add(cmd)
	return cmd
}

func printInspection(w io.Writer, in *artifact.Inspection, plainHTTP bool) {
	fmt.Fprintf(w, "Reference: %s\nIndex:     %s (%d bytes)\n", in.Ref, in.Index.Digest, in.Index.Size)
	keys := make([]string, 0, len(in.Annotations))
	for k := range in.Annotations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s: %s\n", k, in.Annotations[k])
	}
	for _, p := range in.Platforms {
		fmt.Fprintf(w, "\nPlatform linux/%s\n", p.Arch)
		for _, f := range p.Files {
			fmt.Fprintf(w, "  %-10s %s\n", f.Component, f.Name)
			fmt.Fprintf(w, "    manifest %s\n    layer    %s (%d bytes)\n", f.Manifest.Digest, f.Layer.Digest, f.Layer.Size)
		}
		if s, ok := p.IronicSettings(); ok {
			s.WriteText(w, "  ")
		}
	}
	printPlainHTTPWarning(w, in.Platforms, plainHTTP)
	fmt.Fprintf(w, "\nReferrers: %d\n", len(in.Referrers))
	for _, r := range in.Referrers {
		fmt.Fprintf(w, "  %s %s (%d bytes)\n", r.ArtifactType, r.Digest, r.Size)
	}
}

// printPlainHTTPWarning says, after oci:// URLs read with --plain-http, that Ironic will not
// read them over HTTP.
func printPlainHTTPWarning(w io.Writer, platforms []artifact.PlatformFiles, plainHTTP bool) {
	if !plainHTTP {
		return
	}
	for _, p := range platforms {
		if _, ok := p.IronicSettings(); ok {
			fmt.Fprint(w, "\n"+ironicPlainHTTPWarning)
			return
		}
	}
}

// ironicPlainHTTPWarning explains why oci:// URLs of a registry reached with --plain-http do
// not work in Ironic, and what to do instead.
const ironicPlainHTTPWarning = `Warning: this registry was reached over plain HTTP (--plain-http), but Ironic reads oci://
URLs over HTTPS: always in 2025.1 and 2025.2, and in 2026.1 and later unless ironic.conf sets
[oci]permit_fallback_to_http_transport = true. These URLs fail in Ironic with an SSL error
(WRONG_VERSION_NUMBER). Serve the registry over TLS; for a private CA, add the CA to the
conductor's system trust store (update-ca-certificates) and leave [DEFAULT]webserver_verify_ca
a boolean. See docs/ironic.md.
`
