package main

import (
	"bytes"
	"fmt"

	"github.com/spf13/cobra"

	"imload/reports"
)

// newReportCompareCmd is `imload report compare A B`.
func newReportCompareCmd() *cobra.Command {
	var htmlOut, labelA, labelB string
	cmd := &cobra.Command{
		Use:   "compare A B",
		Short: "Compare two results side by side",
		Long: `Compare two results side by side (A, B and the ratio B/A) and mark the
better side of every metric: connections, the server's /stats, bytes and frames
per delivered message, delivery counts, latency percentiles, reconnects,
errors, CPU and memory.

Runs are paired by mode (shared with shared, per-tab with per-tab); two results
of one run each are compared whatever their modes. The table is printed; with
--html it is also written as a self-contained HTML page.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, pathA, err := loadResult(args[0])
			if err != nil {
				return err
			}
			b, pathB, err := loadResult(args[1])
			if err != nil {
				return err
			}
			if labelA == "" {
				labelA = resultLabel(pathA)
			}
			if labelB == "" {
				labelB = resultLabel(pathB)
			}
			if labelA == labelB {
				labelA, labelB = "A: "+labelA, "B: "+labelB
			}
			cs, err := reports.CompareResults(a, b, labelA, labelB)
			if err != nil {
				return fmt.Errorf("compare %s and %s: %w", pathA, pathB, err)
			}
			out := cmd.OutOrStdout()
			for i, c := range cs {
				if i > 0 {
					fmt.Fprintln(out)
				}
				if err := c.Text(out); err != nil {
					return err
				}
			}
			if htmlOut != "" {
				var buf bytes.Buffer
				if err := reports.ComparisonsHTML(&buf, cs); err != nil {
					return err
				}
				if err := writeOutput(cmd, htmlOut, buf.Bytes()); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&htmlOut, "html", "", "also write the comparison as HTML to this file")
	cmd.Flags().StringVar(&labelA, "label-a", "", "label of A (default: its directory or file name)")
	cmd.Flags().StringVar(&labelB, "label-b", "", "label of B (default: its directory or file name)")
	return cmd
}
