package main

import (
	"fmt"
	"strings"

	"github.com/ipa-oci/ipa-oci/builder"
	"github.com/spf13/cobra"
)

func newBuilderCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "builder",
		Short: "Manage the builder container image Buildroot runs in",
	}
	cmd.AddCommand(newBuilderBuildCmd(g), newBuilderDiffCmd())
	return cmd
}

func newBuilderBuildCmd(g *globalOptions) *cobra.Command {
	var (
		file      string
		tag       string
		buildArgs []string
		noCache   bool
	)
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build Dockerfile.builder through the Docker Engine API and print the image ID",
		Long: `Build the builder image from Dockerfile.builder with the engine's classic builder and
host networking, tag it, and print its image ID (sha256:...). Pin that ID in ipa-oci.yaml
(builder.id) so that 'ipa-oci build' refuses any other image.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			args := map[string]string{}
			for _, a := range buildArgs {
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return fmt.Errorf("--build-arg %q: use NAME=VALUE", a)
				}
				args[k] = v
			}
			ctx := cmd.Context()
			cli, err := builder.NewDockerClient(ctx)
			if err != nil {
				return err
			}
			defer cli.Close()
			id, err := builder.BuildImage(ctx, cli, builder.ImageOptions{
				Dockerfile: file, BuildArgs: args, Tag: tag, NoCache: noCache, Log: g.log,
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "Dockerfile.builder", "builder Dockerfile (it is the whole build context)")
	cmd.Flags().StringVarP(&tag, "tag", "t", builder.DefaultBuilderTag, "tag for the image (\"-\" for none)")
	cmd.Flags().StringArrayVar(&buildArgs, "build-arg", nil, "NAME=VALUE build argument, repeatable (BASE_IMAGE, APT_SNAPSHOT, APT_MIRROR, ...)")
	cmd.Flags().BoolVar(&noCache, "no-cache", false, "do not use the engine's build cache")
	return cmd
}

func newBuilderDiffCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "diff IMAGE1 IMAGE2",
		Short: "Compare two builder images file by file (content, mode, owner; not mtimes)",
		Long: `Diff exports both images' filesystems through the engine and compares every path's type,
content sha256, mode, owner and link target; modification times and the paths the engine creates
in every container are left out. Use it to check that a builder image rebuilt from
Dockerfile.builder has the content of the pinned one even though its image ID differs.
Exit status: 0 when identical, 1 otherwise (the differing paths are printed).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cli, err := builder.NewDockerClient(ctx)
			if err != nil {
				return err
			}
			defer cli.Close()
			a, err := builder.FileManifest(ctx, cli, args[0])
			if err != nil {
				return err
			}
			b, err := builder.FileManifest(ctx, cli, args[1])
			if err != nil {
				return err
			}
			diff := builder.DiffManifests(a, b)
			w := cmd.OutOrStdout()
			for _, d := range diff {
				fmt.Fprintln(w, d)
			}
			if len(diff) > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%s and %s differ in %d paths", args[0], args[1], len(diff))}
			}
			fmt.Fprintf(w, "identical: %d paths\n", len(a))
			return nil
		},
	}
}
