package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"imload/reports"
)

// newReportMergeCmd is `imload report merge A B ... -o M`.
func newReportMergeCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "merge RESULT... -o OUT",
		Short: "Merge the results of one test run on several load machines",
		Long: `Merge the results of one test spread over several load machines into one
result, exactly: histograms are merged, counters summed, time series aligned on
wall-clock seconds. Results whose scenario differs (anything but the seed) are
refused.

OUT is a directory, which receives result.json and every report (report.html,
summary.txt, .hgrm files, comparison), or a file name ending in .json, which
receives the merged result only.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("merge: -o OUT is required (a directory, or a .json file)")
			}
			results := make([]*reports.Result, len(args))
			paths := make([]string, len(args))
			for i, arg := range args {
				r, path, err := loadResult(arg)
				if err != nil {
					return err
				}
				results[i], paths[i] = r, path
			}
			merged, err := reports.Merge(results...)
			if err != nil {
				var me *reports.MismatchError
				if errors.As(err, &me) {
					return fmt.Errorf("cannot merge %s and %s: scenario field %q differs (%s vs %s); only results of the same scenario can be merged",
						paths[0], paths[me.Index], me.Field, me.First, me.Other)
				}
				return fmt.Errorf("merge: %w", err)
			}
			if strings.HasSuffix(out, ".json") {
				if err := merged.Save(out); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "merged %d results into %s\n", len(args), out)
				return nil
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("merge: %w", err)
			}
			if err := merged.Save(filepath.Join(out, reports.FileResult)); err != nil {
				return err
			}
			if err := reports.WriteAll(out, merged); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "merged %d results into %s (verdict %s)\n", len(args), out, merged.Verdict)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "output directory, or .json file (required)")
	return cmd
}
