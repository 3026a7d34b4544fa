package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ipa-oci/ipa-oci/builder"
	"github.com/spf13/cobra"
)

func newConfigCmd(g *globalOptions) *cobra.Command {
	f := &buildFlags{}
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the resolved build configuration: ipa-oci.yaml + flags + defaults + the lock (like kas dump)",
		Long: `Config prints what 'ipa-oci build' with the same ipa-oci.yaml and flags would use: every field
with its default filled in, the lock's pins (Buildroot, commits, SOURCE_DATE_EPOCH, builder image
ID, wheel counts) when the lock matches (or why it does not), the make command line every make
call starts with, and each builder container's network, mounts and environment (values taken
from the host environment are not shown). It runs nothing. YAML, or JSON with --json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := f.options(cmd, g, false)
			if err != nil {
				return err
			}
			r, err := builder.Resolve(o, f.lockFile)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				return err
			}
			if asJSON {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
				return err
			}
			return jsonToYAML(cmd.OutOrStdout(), b)
		},
	}
	f.add(cmd.Flags(), makeKind)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of YAML")
	return cmd
}

// jsonToYAML writes the JSON document b as block-style YAML, keeping the key order (every
// string quoted, as JSON strings are valid YAML scalars).
func jsonToYAML(w io.Writer, b []byte) error {
	// Walk the tokens: decoding into maps would lose the order.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out strings.Builder
	if err := yamlValue(dec, &out, 0, atLineStart); err != nil {
		return err
	}
	_, err := io.WriteString(w, out.String())
	return err
}

// Where yamlValue writes a value: at the start of a line, after "key:", or after "-".
const (
	atLineStart = iota
	afterKey
	afterDash
)

// yamlValue writes the next JSON value of dec at indent (nesting level).
func yamlValue(dec *json.Decoder, out *strings.Builder, indent, at int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	pad := strings.Repeat("  ", indent)
	switch t := tok.(type) {
	case json.Delim:
		if !dec.More() {
			dec.Token()
			out.WriteString(map[bool]string{true: " ", false: ""}[at != atLineStart] + map[json.Delim]string{'{': "{}", '[': "[]"}[t] + "\n")
			return nil
		}
		first := pad
		switch {
		case at == afterDash && t == '{':
			first = " " // "- key: value"
		case at != atLineStart:
			out.WriteString("\n")
		}
		for i := 0; dec.More(); i++ {
			p := pad
			if i == 0 {
				p = first
			}
			if t == '{' {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s%s:", p, k)
				err = yamlValue(dec, out, indent+1, afterKey)
			} else {
				out.WriteString(p + "-")
				err = yamlValue(dec, out, indent+1, afterDash)
			}
			if err != nil {
				return err
			}
		}
		_, err := dec.Token()
		return err
	case string:
		out.WriteString(" " + strconv.Quote(t) + "\n")
	case json.Number:
		out.WriteString(" " + t.String() + "\n")
	case bool:
		out.WriteString(" " + strconv.FormatBool(t) + "\n")
	case nil:
		out.WriteString(" null\n")
	}
	return nil
}
