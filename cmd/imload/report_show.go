package main

import (
	"errors"

	"github.com/spf13/cobra"

	"imload/reports"
)

// newReportShowCmd is `imload report show RESULT`.
func newReportShowCmd() *cobra.Command {
	var check, compare bool
	cmd := &cobra.Command{
		Use:   "show RESULT",
		Short: "Print the text summary of a result",
		Long: `Print the text summary of a result (the content of summary.txt).

With --compare, a result with a shared and a per-tab run is followed by their
side-by-side comparison. With --check, the exit code is 1 when the result's
verdict is FAIL, so that CI can gate on a saved result.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, _, err := loadResult(args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if err := reports.Text(out, r); err != nil {
				return err
			}
			if c := reports.CompareModes(r); compare && c != nil {
				if _, err := out.Write([]byte("\n")); err != nil {
					return err
				}
				if err := c.Text(out); err != nil {
					return err
				}
			}
			if check && !r.Verdict.Pass {
				return &exitError{code: 1, err: errors.New("verdict " + r.Verdict.String())}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "exit with code 1 when the verdict is FAIL")
	cmd.Flags().BoolVar(&compare, "compare", false, "also print the per-tab vs shared comparison")
	return cmd
}
